"""INT8 against fp32 in ONNX Runtime, per activation type: ms and ratio to fp32 of the network and the detector
(``mmdet_adasap.benchmarks.int8_speed``).

    python tools/benchmark_int8.py CONFIG MODEL.onnx [--calib-images 200] [--seed 0] [--batches 1 8]
           [--repeats 30] [--out-dir work_dirs/benchmark_int8]

MODEL.onnx: an fp32 export of tools/export_onnx.py (dynamic batch for --batches above 1). Prints a markdown
table and writes it to OUT_DIR/benchmark_int8.md (the INT8 files and network graphs in OUT_DIR).
"""
import os.path as osp

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, load_config, run_tool
from mmdet_adasap.benchmarks.int8_speed import benchmark


def parse_args(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='the model config (configs/pruned/... for a pruned export)')
    p.add_argument('model', help='the fp32 .onnx file from tools/export_onnx.py')
    p.add_argument('--calib-images', type=int, default=200, help='calibration images from the train split')
    p.add_argument('--seed', type=int, default=0, help='calibration and timing images (default 0)')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8], help='batch sizes of the network timing')
    p.add_argument('--repeats', type=int, default=30, help='timed rounds (median)')
    p.add_argument('--out-dir', default='work_dirs/benchmark_int8')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = benchmark(load_config(args.config), args.model, args.out_dir, args.calib_images, args.seed,
                    args.batches, args.repeats)
    print(out['markdown'])
    with open(osp.join(args.out_dir, 'benchmark_int8.md'), 'w') as f:
        f.write(out['markdown'] + '\n')
    return 0


if __name__ == '__main__':
    run_tool(main)
