"""Latency-aware pruning benchmark: prints the targets as ratios, paired and interleaved in one process.

    python tools/benchmark_latency_prune.py [CONFIG] [--checkpoint DEMO.pth] [--table LUT.json] \\
        [--input-size 256] [--batches 1 8] [--threads 1] [--runs 30]

For each batch: builds (or loads) the latency table, then one-shot prunes the model with
* latency targets 0.6 / 0.4, ``ranking='knapsack'`` and the default ``'global'``: target vs measured latency of the
  exported model (median of ``--runs`` runs, dense and pruned interleaved) and table-predicted vs measured;
* FLOPs 50 % knapsack vs global: realised speed-up / FLOPs reduction;
and, with ``--checkpoint`` (a trained model), the clean mAP of knapsack vs global at each latency target right
after one-shot pruning, and with ``--finetune-iters N`` also after the same N SGD iterations of each exported
model through ``configs/pruned/`` (run from the repository root so the config's data_root resolves).
``--importance taylor`` ranks by first-order Taylor scores accumulated over ``--taylor-batches`` training batches
of the dense model (HALP's criterion: a loss estimate, comparable across layers), instead of the L2 norm.
Speed targets live here, not in timed tests; rerun on a quiet machine for the reported numbers.
"""
import copy
import tempfile
import time

import torch

import mmdet_adasap  # noqa: E402,F401
from mmdet_adasap.apis import ToolParser, build_detector, interleaved_latency, load_config, run_tool  # noqa: E402
from mmdet_adasap.benchmarks.latency_prune import (clean_map, finetune_map, kept_importance,  # noqa: E402
                                                   prune_one_shot, taylor_importance)
from mmdet_adasap.pruning import FlopsCost, build_channel_groups, build_importance  # noqa: E402
from mmdet_adasap.pruning.latency_measure import measure_latency_table  # noqa: E402
from mmdet_adasap.pruning.latency_table import load_table, save_table  # noqa: E402
from mmdet_adasap.pruning.targets import LatencyCost  # noqa: E402

DEMO = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
PRUNED_DEMO = 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'  # fine-tunes an exported demo model


def run_batch(args, cfg, model, batch, importance):
    shape = (1, 3, args.input_size, args.input_size)
    timed = (batch, 3, args.input_size, args.input_size)
    if args.table and batch == args.batches[0]:
        table = load_table(args.table)
    else:
        t0 = time.perf_counter()
        table = measure_latency_table(build_channel_groups(model, shape), batch=batch, threads=args.threads,
                                      round_to=args.round_to)
        print(f'\n[batch {batch}] latency table built in {time.perf_counter() - t0:.1f} s '
              f'(calibration errors {", ".join(f"{e:+.1%}" for e in table["fit"]["rel_errors"])})')
        save_table(table, f'/tmp/latency_table_b{batch}.json')
    rows, models, pruners = [], [model], []
    dense_scores = copy.deepcopy(importance)(build_channel_groups(model, shape))
    for kind, ratio in [('latency', r) for r in args.latency_targets] + [('flops', 0.5)]:
        for ranking in ('knapsack', 'global'):
            target = dict(type=kind, ratio=ratio, **(dict(batch=batch) if kind == 'latency' else {}))
            try:
                pruner, exported = prune_one_shot(model, shape, table, target, ranking, args.round_to, importance)
            except ValueError as e:
                print(f'  {kind} {ratio} {ranking}: refused: {e}')
                continue
            rows.append((kind, ratio, ranking))
            pruners.append(pruner)
            models.append(exported)
    measured = interleaved_latency(models, timed, args.runs, threads=args.threads)
    dense = measured[0]
    print(f'\n[batch {batch}, {args.threads} thread(s), {args.input_size} px] dense {dense:.2f} ms (median of '
          f'{args.runs}, interleaved)')
    print(f'{"target":<13}{"ranking":<9}{"meas/dense":>11}{"meas/target":>12}{"pred/dense":>11}'
          f'{"pred/meas (ratio)":>18}{"pred/meas (ms)":>15}{"FLOPs":>7}{"speed-up/FLOPs red.":>20}'
          f'{"kept importance":>16}')
    for (kind, ratio, ranking), pruner, ms in zip(rows, pruners, measured[1:]):
        kept = pruner.masks.num_kept()
        lat = pruner.cost if pruner.cost.name == 'latency' else LatencyCost(pruner.groups, table)
        pred = lat(kept)
        flops = FlopsCost(pruner.groups)
        fr = flops(kept) / flops.dense
        print(f'{kind + " " + str(ratio):<13}{ranking:<9}{ms / dense:>11.3f}{ms / dense / ratio:>12.3f}'
              f'{pred / lat.dense:>11.3f}{(pred / lat.dense) / (ms / dense):>18.3f}{pred / ms:>15.3f}'
              f'{fr:>7.3f}{(dense / ms) * fr:>20.3f}{kept_importance(pruner, dense_scores):>16.3f}')
    print(f'table dense {table["dense_ms"]:.2f} ms vs measured now {dense:.2f} ms (absolute ms drift with load; '
          'the ratio columns are what a target uses)')
    if args.checkpoint and batch == args.batches[0]:
        compare_maps(args, cfg, rows, pruners, measured)


def compare_maps(args, cfg, rows, pruners, measured):
    dense = measured[0]
    after = f', then after {args.finetune_iters} SGD iterations at the pruned size' if args.finetune_iters else ''
    print(f'\nclean mAP right after one-shot pruning (no fine-tune){after}, {args.importance} importance '
          f'(normalize {args.normalize}):')
    for (kind, ratio, ranking), pruner, ms in zip(rows, pruners, measured[1:]):
        pruned, config = pruner.export_with_config()
        line = (f'  {kind} {ratio} {ranking:<9} measured {ms / dense:.3f} of dense: mAP '
                f'{clean_map(cfg, pruned.eval()):.4f}')
        if args.finetune_iters:
            with tempfile.TemporaryDirectory() as tmp:
                line += f' -> {finetune_map(PRUNED_DEMO, pruned, config, args.finetune_iters, tmp):.4f}'
        print(line, flush=True)


def main(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config', nargs='?', default=DEMO)
    p.add_argument('--checkpoint', help='trained weights (needed for the mAP comparison)')
    p.add_argument('--table', help='latency table for the first batch (default: build one now)')
    p.add_argument('--input-size', type=int, default=256)
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('--round-to', type=int, default=8, help='channel granularity of the prunes and the table grid')
    p.add_argument('--latency-targets', type=float, nargs='+', default=[0.6, 0.4])
    p.add_argument('--importance', choices=['l2', 'taylor'], default='l2')
    p.add_argument('--normalize', default='mean', help="the importance's normalisation: mean | max | l2 | none")
    p.add_argument('--taylor-batches', type=int, default=16)
    p.add_argument('--finetune-iters', type=int, default=0,
                   help='also compare the mAPs after this many SGD iterations (demo config only)')
    args = p.parse_args(argv)
    if args.finetune_iters and args.config != DEMO:
        p.error(f'--finetune-iters fine-tunes through {PRUNED_DEMO} (the demo detector only), not {args.config}')
    normalize = None if args.normalize == 'none' else args.normalize
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    model, _ = build_detector(cfg, args.checkpoint)
    if not args.checkpoint:  # mmdet's init (e.g. L2Norm scales are uninitialised memory until init_weights)
        model.init_weights()
    if not args.checkpoint:
        print('no --checkpoint: random-init weights (latency only; the mAP comparison needs a trained model)')
    shape = (1, 3, args.input_size, args.input_size)
    importance = (taylor_importance(cfg, model, shape, args.taylor_batches, normalize)
                  if args.importance == 'taylor' else build_importance(dict(type='l2', normalize=normalize)))
    for batch in args.batches:
        run_batch(args, cfg, model, batch, importance)


if __name__ == '__main__':
    run_tool(main)
