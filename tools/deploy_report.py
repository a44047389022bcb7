"""One deployment report: dense and pruned detectors x fp32 / INT8 ONNX, side by side.

    python tools/deploy_report.py CONFIG DENSE.pth --pruned NAME=PRUNED.pth [NAME=PRUNED.pth ...] --out DIR
           [--corruptions gaussian_noise motion_blur snow contrast] [--severities 3] [--calib-images 200]
           [--seed 0] [--batches 1 8] [--threads 1 all] [--repeats 20]

Per model (dense, and each pruned checkpoint from tools/prune.py or PruningHook, built on CONFIG re-shaped to
its channels) and precision (fp32 export, INT8 static QDQ): file size, ONNX Runtime latency of the network at
each batch and thread count and of the whole detector at batch 1, clean mAP / mPC / rPC through ONNX Runtime,
FLOPs and speed-up over dense fp32 (``mmdet_adasap.deploy.report``). Writes DIR/deploy_report.md, .json and
.png (mPC against latency). Rerunning the same command reuses the finished artifacts (DIR/artifacts/).
"""
import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.deploy.quantize import ACTIVATION_TYPES
from mmdet_adasap.deploy.report import DEMO_CORRUPTIONS, ReportError, deploy_report, parse_pruned, report_markdown


def thread_count(value: str):
    if value == 'all':
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ReportError(f'--threads takes positive integers or "all", got {value!r}')


def parse_args(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='the dense model config (pruned checkpoints are built on it)')
    p.add_argument('checkpoint', help='the dense checkpoint')
    p.add_argument('--pruned', nargs='+', default=[], metavar='NAME=CHECKPOINT',
                   help='pruned checkpoints (tools/prune.py, PruningHook), each with a name for the report')
    p.add_argument('--out', required=True, help='output directory (files, per-artifact records, report)')
    p.add_argument('--corruptions', nargs='+', default=list(DEMO_CORRUPTIONS),
                   help='as tools/test_robustness.py (default: one per category, the demo matrix\'s four)')
    p.add_argument('--severities', nargs='+', type=int, default=[3])
    p.add_argument('--cache', help='VOC-C cache root from tools/make_voc_c.py')
    p.add_argument('--calib-images', type=int, default=200, help='INT8 calibration images (train split)')
    p.add_argument('--activations', choices=ACTIVATION_TYPES, default='uint8',
                   help='8-bit type of the INT8 files\' activations: uint8 (U8S8, fast on x86-64) or int8 (S8S8)')
    p.add_argument('--seed', type=int, default=0, help='calibration images, timing images and corruptions')
    p.add_argument('--batches', nargs='+', type=int, default=[1, 8], help='batch sizes of the network timing')
    p.add_argument('--threads', nargs='+', default=['1', 'all'], help='ONNX Runtime threads: integers, "all"')
    p.add_argument('--repeats', type=int, default=20, help='timed calls per latency (median)')
    p.add_argument('--input-size', type=int, nargs='+', metavar='H [W]', help='default: the test Resize')
    p.add_argument('--no-resume', action='store_true', help='measure every artifact again')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.input_size and len(args.input_size) > 2:
        raise ReportError(f'--input-size takes H [W], got {args.input_size}')
    report = deploy_report(args.config, args.checkpoint, parse_pruned(args.pruned), args.out,
                           corruptions=args.corruptions, severities=args.severities, calib_images=args.calib_images,
                           seed=args.seed, batches=args.batches, thread_counts=[thread_count(t) for t in args.threads],
                           repeats=args.repeats, input_hw=(args.input_size * 2)[:2] if args.input_size else None,
                           cache_root=args.cache, resume=not args.no_resume, activations=args.activations)
    print(report_markdown(report))
    return 0


if __name__ == '__main__':
    run_tool(main)
