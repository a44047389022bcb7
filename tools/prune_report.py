"""Dense vs pruned detector: parameters, FLOPs, measured latency and channels kept per layer.

    # a pruned checkpoint from tools/prune.py or PruningHook:
    python tools/prune_report.py CONFIG --checkpoint dense.pth --pruned pruned.pth
    # or prune one-shot on the fly:
    python tools/prune_report.py CONFIG --checkpoint dense.pth --target flops --ratio 0.5

Writes ``report.md`` (tables), ``report.json`` and ``report.png`` (bar charts) to ``--out-dir`` and prints the
tables. FLOPs are conv + linear MACs of the pruned part at the given input, as torch-pruning's counter counts
them (the same count the FLOPs target uses), plus that counter's all-ops total. Latency is the median of
``--repeats`` batch-1 runs of the pruned part (``_forward``: backbone, neck and head convs for one-stage
detectors; ``extract_feat`` for two-stage ones; no NMS), dense and pruned interleaved so that load on a shared
machine affects both alike.

The deployment table times the network and the whole deployed detector (preprocessing, network, decoding,
NMS), dense vs pruned, in PyTorch and in ONNX Runtime (CPU), at ``--batches`` (default 1 and 8) and
``--thread-counts`` (default 1 and all cores), and prints each row's realised speed-up over the FLOPs reduction
(``mmdet_adasap.deploy.latency``); ``--runtimes pytorch`` skips ONNX Runtime, ``--no-deploy-latency`` the
table. The ONNX files (dynamic batch) are kept in ``--out-dir``.
"""
import copy
import json
import os
import os.path as osp

import torch

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import (ToolParser, build_detector, input_size_of, interleaved_latency, load_config,
                               out_channels_kept, params_and_flops, run_tool)
from mmdet_adasap.deploy.latency import measure_deploy_latency, speedup_markdown
from mmdet_adasap.pruning import ChannelPruner


def plot(rows, summary, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    changed = [r for r in rows if r[1] != r[2]] or rows
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.28 * len(changed)), 9),
                                   gridspec_kw=dict(height_ratios=[3, 1.3]))
    xs = range(len(changed))
    ax1.bar(xs, [r[1] for r in changed], color='#cccccc', label='dense')
    ax1.bar(xs, [r[2] for r in changed], color='#1f77b4', label='pruned')
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels([r[0] for r in changed], rotation=90, fontsize=6)
    ax1.set_ylabel('output channels')
    ax1.set_title(f'{title}: channels kept per pruned layer')
    ax1.legend()
    keys = [k for k in ('params', 'flops', 'latency_ms') if k in summary['dense']]
    ratios = [summary['pruned'][k] / summary['dense'][k] for k in keys]
    ax2.barh(keys, ratios, color=['#2ca02c', '#ff7f0e', '#d62728'][:len(keys)])
    for i, r in enumerate(ratios):
        ax2.text(r, i, f' {r:.3f}', va='center')
    ax2.set_xlim(0, 1.15)
    ax2.set_xlabel('pruned / dense')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def deploy_rows(args, models, size, out_dir):
    """The deployment latency rows (``mmdet_adasap.deploy.latency``) at a size the exporter accepts."""
    divisor = getattr(models['dense'].data_preprocessor, 'pad_size_divisor', 1) or 1
    side = -(-size // divisor) * divisor
    threads = []
    for t in args.thread_counts:
        if t != 'all' and not (t.isdigit() and int(t) > 0):
            raise SystemExit(f'error: --thread-counts takes positive integers or "all", got {t!r}')
        threads.append(None if t == 'all' else int(t))
    return measure_deploy_latency(models, (side, side), out_dir, runtimes=args.runtimes, batches=args.batches,
                                  thread_counts=threads, repeats=args.repeats)


def parse_args(argv=None):
    p = ToolParser(description='Params, FLOPs, latency and channels: dense vs pruned')
    p.add_argument('config', help='the dense model config')
    p.add_argument('--checkpoint', help='dense checkpoint (default: the config\'s random init)')
    p.add_argument('--pruned', help='pruned checkpoint (tools/prune.py / PruningHook); else prune one-shot')
    p.add_argument('--target', default='flops', choices=['flops', 'params'])
    p.add_argument('--ratio', type=float, default=0.5)
    p.add_argument('--round-to', type=int, default=8)
    p.add_argument('--input-size', type=int, help='square input (default: the test pipeline Resize)')
    p.add_argument('--repeats', type=int, default=20, help='latency runs per model (median)')
    p.add_argument('--threads', type=int, help='torch intra-op threads for the latency runs (default: torch\'s)')
    p.add_argument('--no-latency', action='store_true')
    p.add_argument('--no-deploy-latency', action='store_true', help='skip the PyTorch / ONNX Runtime table')
    p.add_argument('--runtimes', nargs='+', default=['pytorch', 'onnxruntime'], choices=['pytorch', 'onnxruntime'],
                   help='runtimes of the deployment latency table')
    p.add_argument('--batches', nargs='+', type=int, default=[1, 8], help='batch sizes of the deployment table')
    p.add_argument('--thread-counts', nargs='+', default=['1', 'all'],
                   help='CPU threads of the deployment table: integers and/or "all"')
    p.add_argument('--out-dir', help='default: work_dirs/prune_report/<config name>')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'prune_report', name)
    os.makedirs(out_dir, exist_ok=True)
    size = args.input_size or input_size_of(cfg)
    shape = (1, 3, size, size)
    dense, _ = build_detector(cfg, args.checkpoint, expect='dense')
    if args.pruned:
        pruned, _ = build_detector(cfg, args.pruned, expect='pruned')
    if args.pruned:
        how = f'pruned checkpoint {args.pruned}'
    else:
        pruner = ChannelPruner(copy.deepcopy(dense), shape, target=dict(type=args.target, ratio=args.ratio),
                               round_to=args.round_to)
        pruner.prune_one_shot()
        pruned = pruner.export()
        how = f'one-shot global L2 to {args.ratio} of dense {args.target} (round_to={args.round_to})'
    pruned.eval()

    summary = dict(config=args.config, input=list(shape), how=how, threads=torch.get_num_threads(),
                   dense=params_and_flops(dense, shape), pruned=params_and_flops(pruned, shape))
    if not args.no_latency:
        d_ms, p_ms = interleaved_latency([dense, pruned], shape, args.repeats, threads=torch.get_num_threads())
        summary['dense']['latency_ms'], summary['pruned']['latency_ms'] = d_ms, p_ms
    if not (args.no_latency or args.no_deploy_latency):
        summary['deploy_latency'] = deploy_rows(args, dict(dense=dense, pruned=pruned), size, out_dir)
    rows = out_channels_kept(dense, pruned)

    lines = [f'# Pruning report: {name}', '', f'{how}; input {shape}; CPU threads {summary["threads"]}', '',
             '| metric | dense | pruned | pruned / dense | dense / pruned |', '|---|---|---|---|---|']
    for key, label in (('params', 'parameters'), ('flops', 'FLOPs (conv+linear MACs)'),
                       ('flops_all_ops', 'FLOPs (all ops, tp counter)'), ('latency_ms', 'latency batch-1 (ms)')):
        if key in summary['dense']:
            d, p = summary['dense'][key], summary['pruned'][key]
            fmt = '{:.2f}' if key == 'latency_ms' else '{:,}'
            lines.append(f'| {label} | {fmt.format(d)} | {fmt.format(p)} | {p / d:.3f} | {d / p:.2f}x |')
    if 'latency_ms' in summary['dense']:
        flops_speedup = summary['dense']['flops'] / summary['pruned']['flops']
        lat_speedup = summary['dense']['latency_ms'] / summary['pruned']['latency_ms']
        summary['latency_speedup_over_flops_reduction'] = lat_speedup / flops_speedup
        lines += ['', f'latency speed-up / FLOPs reduction = {lat_speedup:.2f} / {flops_speedup:.2f} = '
                  f'{lat_speedup / flops_speedup:.2f}']
    if summary.get('deploy_latency'):
        reduction = summary['dense']['flops'] / summary['pruned']['flops']
        lines += ['', f'Latency in PyTorch and ONNX Runtime (CPU), median ms per batch; network = the pruned part, '
                  f'deployed = preprocessing + network + decoding + NMS; FLOPs reduction {reduction:.2f}x:', '']
        lines += speedup_markdown(summary['deploy_latency'], reduction)
    lines += ['', '| layer | dense out channels | pruned | kept |', '|---|---|---|---|']
    for layer, d, p in rows:
        if d != p:
            lines.append(f'| {layer} | {d} | {p} | {p / d:.2f} |')
    text = '\n'.join(lines)
    print(text)
    with open(osp.join(out_dir, 'report.md'), 'w') as f:
        f.write(text + '\n')
    summary['layers'] = [dict(name=n, dense=d, pruned=p) for n, d, p in rows]
    with open(osp.join(out_dir, 'report.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    plot(rows, summary, osp.join(out_dir, 'report.png'), name)
    print(f'\nwritten: {out_dir}/report.md, report.json, report.png')


if __name__ == '__main__':
    run_tool(main)
