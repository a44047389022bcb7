"""Deployed RTMDet-tiny / YOLOX-s, dense vs pruned to a FLOPs ratio: ONNX Runtime parity, and realised speed-up
against the FLOPs reduction in ONNX Runtime and PyTorch (``mmdet_adasap.benchmarks.onnx_speed``).

    python tools/onnx_speed.py [--detectors RTMDet-tiny YOLOX-s] [--side 320] [--ratio 0.5] [--batches 1 8]
           [--threads 1] [--repeats 10] [--out-dir work_dirs/onnx_speed]

Prints markdown tables and writes them to OUT_DIR/onnx_speed.md (ONNX files in OUT_DIR/<detector>/).
Exits 1 when a parity check fails.
"""
import os
import os.path as osp

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.benchmarks.onnx_speed import DETECTORS, run


def parse_args(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('--detectors', nargs='+', help=f'default: all of {sorted(DETECTORS)}')
    p.add_argument('--side', type=int, default=320, help='square input side (default 320)')
    p.add_argument('--ratio', type=float, default=0.5, help='pruned / dense FLOPs target (default 0.5)')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    p.add_argument('--threads', type=int, default=1, help='PyTorch and ONNX Runtime threads (default 1)')
    p.add_argument('--repeats', type=int, default=10, help='timed rounds per row (median)')
    p.add_argument('--out-dir', default='work_dirs/onnx_speed')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    out = run(args.detectors, args.out_dir, side=args.side, ratio=args.ratio, batches=args.batches,
              threads=args.threads, repeats=args.repeats)
    print(out['markdown'])
    with open(osp.join(args.out_dir, 'onnx_speed.md'), 'w') as f:
        f.write(out['markdown'] + '\n')
    failed = [f'{r["detector"]} {k}' for r in out['results'] for k, p in r['parity'].items() if not p.ok]
    if failed:
        raise SystemExit(f'error: the parity check failed for {failed} (see the table)')
    return 0


if __name__ == '__main__':
    run_tool(main)
