"""Export a detector checkpoint (dense, or pruned through configs/pruned/...) to ONNX with its post-processing.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--batch N|dynamic] [--opset K] [--input-size H [W]]

The graph takes raw pixels (float32, 0-255, BGR as mmcv loads them; mean/std and BGR->RGB are inside) at a fixed
H x W (default: the test pipeline's Resize) and returns ``dets`` (B, K, 5: x1, y1, x2, y2, score in input
pixels) and ``labels`` (B, K; -1 = padding), mmdeploy's convention, with box decoding and ONNX
NonMaxSuppression inside. After writing, the tool judges the file against PyTorch (mmdet's ``predict``) on
real images of the config's test (else val) dataset through its test pipeline, padded to H x W (random images
when that data is not on disk; the report says which and why): the pre-NMS boxes and scores of every prior,
then the kept detections, matched robustly to tied scores (``mmdet_adasap.deploy.parity``); a verdict line
says how many kept detections were compared (none: NMS was not exercised). Beyond the tolerances it exits with
status 1 and a message naming each difference (``--no-check`` skips the check; ``--check-only`` judges an
existing OUT.onnx without exporting).
Evaluate the result with ``tools/test_robustness.py CONFIG OUT.onnx --backend onnxruntime``.
"""
import argparse

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, build_detector, load_config, run_tool
from mmdet_adasap.deploy import DEFAULT_OPSET, check_parity, export_detector, read_metadata


def batch_arg(value: str):
    if value == 'dynamic':
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes a positive integer or 'dynamic', got {value!r}")


def parse_args(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='the model config (configs/pruned/... for a pruned checkpoint)')
    p.add_argument('checkpoint')
    p.add_argument('out', help='the .onnx file to write (its folder must exist)')
    p.add_argument('--batch', type=batch_arg, default=1, help="fixed batch size (default 1) or 'dynamic'")
    p.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    p.add_argument('--input-size', type=int, nargs='+', metavar='H [W]',
                   help='input height [width] (default: the test pipeline Resize)')
    p.add_argument('--no-check', action='store_true', help='skip the PyTorch vs ONNX Runtime comparison')
    p.add_argument('--check-only', action='store_true',
                   help='do not export: judge the existing OUT.onnx against CONFIG + CHECKPOINT')
    p.add_argument('--check-images', type=int, default=2,
                   help='images the check runs (a multiple of a fixed --batch; default 2): real ones from the '
                        "config's test (else val) dataset when on disk, else random")
    p.add_argument('--check-seed', type=int, default=0,
                   help='which dataset images the check runs (the seed of random ones without data; default 0)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.input_size and len(args.input_size) > 2:
        raise SystemExit(f'error: --input-size takes H [W], got {args.input_size}')
    if args.check_only and args.no_check:
        raise SystemExit('error: --check-only and --no-check exclude each other: pass one')
    hw = (args.input_size * 2)[:2] if args.input_size else None
    cfg = load_config(args.config)
    if args.check_only:
        meta = read_metadata(args.out)
        model, _ = build_detector(cfg, args.checkpoint)
    else:
        model, meta = export_detector(cfg, args.checkpoint, args.out, args.batch, args.opset, hw)
        h, w = meta['input_hw']
        print(f'wrote {args.out}: input (B={meta["batch"]}, 3, {h}, {w}) {meta["input"]}; outputs dets (B, '
              f'{meta["max_per_img"]}, 5), labels (B, {meta["max_per_img"]}); opset {meta["opset"]}')
    if args.no_check:
        return 0
    images = args.check_images if meta['batch'] == 'dynamic' else max(args.check_images // meta['batch'], 1) \
        * meta['batch']
    report = check_parity(model, args.out, batch=images, seed=args.check_seed, cfg=cfg)
    print(f'PyTorch vs ONNX Runtime on {report.summary()}')
    print(f'parity: {report.verdict()}')
    if not report.ok:
        raise SystemExit(f'error: {args.out} differs from PyTorch beyond tolerance:\n  '
                         + '\n  '.join(report.failures))
    return 0


if __name__ == '__main__':
    run_tool(main)
