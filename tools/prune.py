"""One-shot channel pruning of a trained detector and export of the physically smaller model.

    python tools/prune.py CONFIG DENSE.pth --target flops --ratio 0.5 --out pruned.pth

The output is a pruned checkpoint (weights + channel configuration, and the channel file beside it) that a
pruned config (``model=dict(type='PrunedDetector', ...)``, ``configs/pruned/``) builds and loads, e.g. ``tools/test.py configs/pruned/<...>.py pruned.pth``.
For pruning during training (HALP's iterative schedule, Taylor importance) use ``PruningHook`` instead.
"""
import os.path as osp

import torch

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, build_detector, input_size_of, load_config, run_tool
from mmdet_adasap.pruning import ChannelPruner, save_pruned_checkpoint
from mmdet_adasap.pruning.channel_groups import TRACED_FORWARDS
from mmdet_adasap.pruning.latency_table import load_table


def parse_args(argv=None):
    p = ToolParser(description='One-shot channel pruning + physical export of a detector')
    p.add_argument('config')
    p.add_argument('checkpoint', help='dense checkpoint')
    p.add_argument('--target', default='flops', choices=['flops', 'params', 'latency'])
    p.add_argument('--ratio', type=float, default=0.5, help='fraction of the dense cost to keep, in (0, 1)')
    p.add_argument('--importance', default='l2', help="l2 (default), bn_scale or a registered data-free type")
    p.add_argument('--round-to', type=int, default=8)
    p.add_argument('--ranking', default='global', choices=['global', 'per_group', 'knapsack'])
    p.add_argument('--input-size', type=int, help='square input for tracing / counting (default: test Resize)')
    p.add_argument('--trace', default='auto', choices=list(TRACED_FORWARDS),
                   help='the forward traced and pruned: forward (the whole tensor forward, heads included), '
                        'extract_feat (backbone + neck only, the head left alone) or auto (default: extract_feat '
                        'for two-stage and DETR-family detectors, forward otherwise)')
    p.add_argument('--ignored-layers', nargs='*', default=[], help='module names or fnmatch patterns')
    p.add_argument('--latency-table', help='JSON table from tools/build_latency_table.py')
    p.add_argument('--out', required=True, help='pruned checkpoint to write')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.importance in ('taylor', 'TaylorImportance'):
        raise SystemExit('error: taylor importance needs gradients from training data; use PruningHook')
    model, meta = build_detector(cfg, args.checkpoint)
    size = args.input_size or input_size_of(cfg)
    table = load_table(args.latency_table) if args.latency_table else None
    pruner = ChannelPruner(model, (1, 3, size, size), target=dict(type=args.target, ratio=args.ratio),
                           importance=args.importance, round_to=args.round_to, ranking=args.ranking,
                           ignored_layers=args.ignored_layers, latency_table=table,
                           forward_fn=TRACED_FORWARDS[args.trace])
    pruner.prune_one_shot()
    pruned, config = pruner.export_with_config()
    keep_meta = {k: meta[k] for k in ('dataset_meta', 'epoch', 'iter') if k in meta}
    keep_meta.update(pruned_from=osp.abspath(args.checkpoint), pruning=dict(
        target=args.target, ratio=args.ratio, importance=args.importance, round_to=args.round_to,
        ranking=args.ranking, input_size=size, achieved=pruner.cost_ratio()))
    save_pruned_checkpoint(args.out, pruned, config, keep_meta)
    print(pruner.summary())
    print(f'wrote {args.out}: {sum(p.numel() for p in pruned.parameters())} params '
          f'({len(config)} layers re-shaped)')


if __name__ == '__main__':
    torch.set_grad_enabled(True)
    run_tool(main)
