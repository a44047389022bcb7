"""Build the latency lookup table a ``target=dict(type='latency', ...)`` prune needs, on THIS machine.

    python tools/build_latency_table.py CONFIG [--checkpoint X.pth] [--input-size 256] [--batch 1] \\
        [--device cpu|cuda] [--threads 1] [--runtime pytorch|onnxruntime] [--precision fp32|int8] \\
        [--out work_dirs/<config>_latency.json]

Times every prunable layer on a grid of channel counts, then the dense model and a few pruned exports, whole
and module by module inside the graph, to calibrate the prediction (see ``mmdet_adasap/pruning/latency_measure.py``
and ``ingraph.py``); prints the build time and how well the table predicts the calibration models. The table
records model, input, batch, device, threads, runtime and precision; a pruner given a table from another model or
input, or a target asking for another batch/device/threads/runtime/precision, refuses it.

``--runtime onnxruntime`` times every layer and model as an exported ONNX graph in an ONNX Runtime CPU session
(``--threads`` intra-op threads), for a detector deployed as ONNX (``mmdet_adasap/deploy/ort_timing.py`` says why
and how); prune with ``target=dict(type='latency', ratio=r, runtime='onnxruntime')``. With ``--precision int8``
every graph is timed after the static INT8 quantization ``tools/quantize_onnx.py`` applies (QDQ, uint8
activations, per-channel int8 weights), for a detector deployed as that INT8 file; prune with
``target=dict(type='latency', ratio=r, runtime='onnxruntime', precision='int8')``. PyTorch tables are fp32.
"""
import os
import os.path as osp

import torch

import mmdet_adasap  # noqa: E402,F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, build_detector, load_config, run_tool, trace_shape  # noqa: E402
from mmdet_adasap.deploy.ort_timing import PRECISIONS, OrtTiming, check_precision  # noqa: E402
from mmdet_adasap.pruning import build_channel_groups  # noqa: E402
from mmdet_adasap.pruning.latency_measure import measure_latency_table  # noqa: E402
from mmdet_adasap.pruning.latency_table import save_table  # noqa: E402


def parse_args(argv=None):
    p = ToolParser(description='Measure a latency lookup table for a detector config')
    p.add_argument('config')
    p.add_argument('--checkpoint', help='weights (only shapes matter for timing; default: random init)')
    p.add_argument('--input-size', type=int, help='square input (default: the test pipeline Resize scale)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--threads', type=int, default=1, help='CPU intra-op threads to time with')
    p.add_argument('--points', type=int, default=5, help='grid points per channel axis')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per layer configuration (median)')
    p.add_argument('--round-to', type=int, default=8)
    p.add_argument('--runtime', default='pytorch', choices=['pytorch', 'onnxruntime'],
                   help='what times the layers and models: PyTorch eager, or ONNX Runtime sessions of ONNX exports')
    p.add_argument('--precision', default='fp32', choices=list(PRECISIONS),
                   help='precision of the timed graphs (int8: quantized as tools/quantize_onnx.py quantizes; '
                        '--runtime onnxruntime only)')
    p.add_argument('--out', help='JSON table (default: work_dirs/<config name>_latency.json)')
    args = p.parse_args(argv)
    for name in ('batch', 'threads', 'points', 'repeats', 'round_to'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is visible on this machine')
    if args.runtime == 'onnxruntime' and args.device != 'cpu':
        p.error('--runtime onnxruntime times ONNX Runtime CPU sessions: use --device cpu')
    if args.runtime == 'pytorch' and args.precision != 'fp32':
        p.error(f'--precision {args.precision} is for --runtime onnxruntime; PyTorch tables are fp32')
    try:
        check_precision(args.precision)
    except ValueError as e:
        p.error(f'--precision: {e}')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.input_size:
        shape = (1, 3, args.input_size, args.input_size)
    else:
        shape = trace_shape(cfg)
    model, _ = build_detector(cfg, args.checkpoint)
    if not args.checkpoint:  # mmdet's init (e.g. L2Norm scales are uninitialised memory until init_weights)
        model.init_weights()
    model = model.to(args.device)
    groups = build_channel_groups(model, shape)
    print(groups.report())
    timing = OrtTiming(args.threads, args.precision) if args.runtime == 'onnxruntime' else None
    table = measure_latency_table(groups, batch=args.batch, threads=args.threads, points=args.points,
                                  round_to=args.round_to, repeats=args.repeats, timing=timing)
    table['fingerprint']['config'] = osp.basename(args.config)
    out = args.out or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0] + '_latency.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    save_table(table, out)
    fit = table['fit']
    errors = ', '.join(f'{e:+.1%}' for e in fit['rel_errors'])
    print(f'\nlatency table for {table["fingerprint"]} -> {out}\n'
          f'built in {table["build_s"]:.1f} s; dense {table["dense_ms"]:.2f} ms; prediction = '
          f'{fit["const_ms"]:.3f} ms + {fit["scale"]:.3f} x the {len(table["layers"])} layers\' and '
          f'{len(table.get("modules", {}))} other modules\' in-graph predictions; calibration errors (dense first): '
          f'{errors}')
    worst = max((abs(e) for e in fit['rel_errors']), default=0.0)
    if worst > 0.10:
        print(f'warning: a calibration error of {worst:.0%}: the table mispredicts its own calibration models (a busy '
              'machine while it was timed?); build it again, with more --repeats or on a quieter machine')


if __name__ == '__main__':
    run_tool(main)
