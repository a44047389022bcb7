"""Latency-aware pruning benchmark: prints the targets as ratios, paired and interleaved in one process.

    python tools/benchmark_latency_prune.py [CONFIG] [--checkpoint DEMO.pth] [--table LUT.json] \\
        [--input-size 256] [--batches 1 8] [--threads 1] [--runs 30] [--runtime pytorch|onnxruntime] \\
        [--precision fp32|int8] [--compare-pytorch-table]

For each batch: builds (or loads) the latency table, then one-shot prunes the model with
* latency targets 0.6 / 0.4, ``ranking='knapsack'`` and the default ``'global'``: target vs measured latency of the
  exported model (median of ``--runs`` runs, dense and pruned interleaved) and table-predicted vs measured;
* FLOPs 50 % knapsack vs global: realised speed-up / FLOPs reduction;
and, with ``--checkpoint`` (a trained model), the clean mAP of knapsack vs global at each latency target right
after one-shot pruning, and with ``--finetune-iters N`` also after the same N SGD iterations of each exported
model through ``configs/pruned/`` (run from the repository root so the config's data_root resolves).
``--importance taylor`` ranks by first-order Taylor scores accumulated over ``--taylor-batches`` training batches
of the dense model (HALP's criterion: a loss estimate, comparable across layers), instead of the L2 norm.
``--runtime onnxruntime`` builds the table in ONNX Runtime (``mmdet_adasap/deploy/ort_timing.py``), prunes with
``target=dict(type='latency', ratio=r, runtime='onnxruntime')`` and measures the exported networks (the graph up
to the pre-NMS tensors) in ORT sessions, round-robin, with one thread by the thread's CPU time; with
``--compare-pytorch-table`` also the knapsack prunes with a PyTorch table (rows ``knapsack/pt``), measured in ORT
alike. ``--precision int8`` (with ``--runtime onnxruntime``) builds the table int8 (every graph quantized as
``tools/quantize_onnx.py`` quantizes: ``OrtTiming(threads, 'int8')``), prunes with ``precision='int8'`` in the
target and measures the dense and pruned networks as int8 graphs, the same way the table times its calibration
models (``OrtTiming.time_models``). The goal: ``meas/target`` within 1 +- 0.10.
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
from mmdet_adasap.deploy.latency import network_latency_ort  # noqa: E402
from mmdet_adasap.deploy.ort_timing import PRECISIONS, OrtTiming  # noqa: E402
from mmdet_adasap.pruning import FlopsCost, build_channel_groups, build_importance  # noqa: E402
from mmdet_adasap.pruning.latency_measure import measure_latency_table  # noqa: E402
from mmdet_adasap.pruning.latency_table import load_table, save_table  # noqa: E402
from mmdet_adasap.pruning.targets import LatencyCost  # noqa: E402

DEMO = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
PRUNED_DEMO = 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'  # fine-tunes an exported demo model


def build_table(args, model, shape, batch, runtime):
    """The first batch's table from ``--table``, else one measured now in ``runtime`` (saved under /tmp)."""
    if args.table and batch == args.batches[0] and runtime == args.runtime:
        return load_table(args.table)
    t0 = time.perf_counter()
    timing = OrtTiming(args.threads, args.precision) if runtime == 'onnxruntime' else None
    precision = timing.precision if timing else 'fp32'
    table = measure_latency_table(build_channel_groups(model, shape), batch=batch, threads=args.threads,
                                  round_to=args.round_to, timing=timing)
    print(f'\n[batch {batch}] {runtime} {precision} latency table built in {time.perf_counter() - t0:.1f} s '
          f'(calibration errors {", ".join(f"{e:+.1%}" for e in table["fit"]["rel_errors"])})')
    save_table(table, f'/tmp/latency_table_{runtime}_{precision}_b{batch}.json')
    return table


def prune_all(args, model, shape, batch, importance, tables):
    """One-shot prunes: each latency target with the knapsack and global ranking (and, with
    ``--compare-pytorch-table``, the knapsack with the PyTorch table), then FLOPs 0.5: (rows, pruners, models)."""
    rows, pruners, models = [], [], []
    plan = [('latency', r, 'knapsack', args.runtime) for r in args.latency_targets]
    plan += [('latency', r, 'knapsack', 'pytorch') for r in args.latency_targets if 'pytorch' in tables and
             args.runtime != 'pytorch']
    plan += [('latency', r, 'global', args.runtime) for r in args.latency_targets]
    plan += [('flops', 0.5, ranking, args.runtime) for ranking in ('knapsack', 'global')]
    for kind, ratio, ranking, runtime in plan:
        target = dict(type=kind, ratio=ratio)
        if kind == 'latency':
            target.update(batch=batch, runtime=runtime)
            if runtime == 'onnxruntime':
                target.update(precision=args.precision)
        label = ranking + ('/pt' if runtime != args.runtime else '')
        try:
            pruner, exported = prune_one_shot(model, shape, tables[runtime], target, ranking, args.round_to,
                                              importance)
        except ValueError as e:
            print(f'  {kind} {ratio} {label}: refused: {e}')
            continue
        rows.append((kind, ratio, label))
        pruners.append(pruner)
        models.append(exported)
    return rows, pruners, models


def measure(args, models, timed):
    """Median ms of each model, round-robin: PyTorch eager, or the exported networks in ONNX Runtime (int8: each
    network quantized, as an int8 table times its calibration models)."""
    if args.runtime == 'pytorch':
        return interleaved_latency(models, timed, args.runs, threads=args.threads)
    if args.precision == 'int8':
        return OrtTiming(args.threads, 'int8').time_models(models, timed, None, args.runs)[0]
    with tempfile.TemporaryDirectory() as tmp:
        return network_latency_ort(models, timed[2:], timed[0], args.threads, args.runs, tmp)


def run_batch(args, cfg, model, batch, importance):
    shape = (1, 3, args.input_size, args.input_size)
    timed = (batch, 3, args.input_size, args.input_size)
    tables = {args.runtime: build_table(args, model, shape, batch, args.runtime)}
    if args.compare_pytorch_table and args.runtime != 'pytorch':
        tables['pytorch'] = build_table(args, model, shape, batch, 'pytorch')
    table = tables[args.runtime]
    dense_scores = copy.deepcopy(importance)(build_channel_groups(model, shape))
    rows, pruners, models = prune_all(args, model, shape, batch, importance, tables)
    measured = measure(args, [model] + models, timed)
    dense = measured[0]
    where = ('PyTorch eager' if args.runtime == 'pytorch' else
             f'ONNX Runtime {args.precision}, network graph up to the pre-NMS tensors, '
             + ('thread CPU time' if args.threads == 1 else 'wall time'))
    print(f'\n[batch {batch}, {args.threads} thread(s), {args.input_size} px, {where}] dense {dense:.2f} ms '
          f'(median of {args.runs}, interleaved)')
    print(f'{"target":<13}{"ranking":<12}{"meas/dense":>11}{"meas/target":>12}{"pred/dense":>11}'
          f'{"pred/meas (ratio)":>18}{"pred/meas (ms)":>15}{"FLOPs":>7}{"speed-up/FLOPs red.":>20}'
          f'{"kept importance":>16}')
    for (kind, ratio, ranking), pruner, ms in zip(rows, pruners, measured[1:]):
        kept = pruner.masks.num_kept()
        lat = pruner.cost if pruner.cost.name == 'latency' else LatencyCost(pruner.groups, table)
        pred = lat(kept)
        flops = FlopsCost(pruner.groups)
        fr = flops(kept) / flops.dense
        print(f'{kind + " " + str(ratio):<13}{ranking:<12}{ms / dense:>11.3f}{ms / dense / ratio:>12.3f}'
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
    p.add_argument('--runtime', choices=['pytorch', 'onnxruntime'], default='pytorch',
                   help='what the table times and what measures the prunes (onnxruntime: the exported network '
                        'graph up to the pre-NMS tensors in ORT CPU sessions)')
    p.add_argument('--precision', choices=list(PRECISIONS), default='fp32',
                   help='with --runtime onnxruntime: int8 builds the table on graphs quantized as '
                        'tools/quantize_onnx.py quantizes and measures the networks so quantized')
    p.add_argument('--compare-pytorch-table', action='store_true',
                   help='with --runtime onnxruntime: also prune with a PyTorch table (rows knapsack/pt)')
    p.add_argument('--importance', choices=['l2', 'taylor'], default='l2')
    p.add_argument('--normalize', default='mean', help="the importance's normalisation: mean | max | l2 | none")
    p.add_argument('--taylor-batches', type=int, default=16)
    p.add_argument('--finetune-iters', type=int, default=0,
                   help='also compare the mAPs after this many SGD iterations (demo config only)')
    args = p.parse_args(argv)
    if args.precision != 'fp32' and args.runtime != 'onnxruntime':
        p.error(f'--precision {args.precision} is for --runtime onnxruntime; PyTorch tables and timings are fp32')
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
