"""Export a detector checkpoint (dense, or pruned through configs/pruned/...) to ONNX with its post-processing.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--batch N|dynamic] [--opset K] [--input-size H [W]]

The graph takes raw pixels (float32, 0-255, BGR as mmcv loads them; mean/std and BGR->RGB are inside) at a fixed
H x W (default: the test pipeline's Resize) and returns ``dets`` (B, K, 5: x1, y1, x2, y2, score in input
pixels) and ``labels`` (B, K; -1 = padding), mmdeploy's convention, with box decoding and ONNX
NonMaxSuppression inside. After writing, the tool runs the same random images through PyTorch (mmdet's
``predict``) and ONNX Runtime and prints the worst box / score difference (``--no-check`` skips it).
Evaluate the result with ``tools/test_robustness.py CONFIG OUT.onnx --backend onnxruntime``.
"""
import argparse
import sys

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import load_config
from mmdet_adasap.deploy import DEFAULT_OPSET, ExportError, check_parity, export_detector


def batch_arg(value: str):
    if value == 'dynamic':
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes a positive integer or 'dynamic', got {value!r}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='the model config (configs/pruned/... for a pruned checkpoint)')
    p.add_argument('checkpoint')
    p.add_argument('out', help='the .onnx file to write (its folder must exist)')
    p.add_argument('--batch', type=batch_arg, default=1, help="fixed batch size (default 1) or 'dynamic'")
    p.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    p.add_argument('--input-size', type=int, nargs='+', metavar='H [W]',
                   help='input height [width] (default: the test pipeline Resize)')
    p.add_argument('--no-check', action='store_true', help='skip the PyTorch vs ONNX Runtime comparison')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.input_size and len(args.input_size) > 2:
        raise SystemExit(f'error: --input-size takes H [W], got {args.input_size}')
    hw = (args.input_size * 2)[:2] if args.input_size else None
    try:
        cfg = load_config(args.config)
        model, meta = export_detector(cfg, args.checkpoint, args.out, args.batch, args.opset, hw)
    except (ExportError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    h, w = meta['input_hw']
    print(f'wrote {args.out}: input (B={meta["batch"]}, 3, {h}, {w}) {meta["input"]}; outputs dets (B, '
          f'{meta["max_per_img"]}, 5), labels (B, {meta["max_per_img"]}); opset {meta["opset"]}')
    if not args.no_check:
        p = check_parity(model, args.out, batch=2 if meta['batch'] == 'dynamic' else meta['batch'])
        print(f'PyTorch vs ONNX Runtime on {len(p["images"])} random images ({p["detections"]} detections): '
              f'max |dbox| {p["box"]:.2e} px ({p["box_rel"]:.1e} of the input side), '
              f'max |dscore| {p["score"]:.2e}, unmatched {p["unmatched"]}')


if __name__ == '__main__':
    sys.exit(main())
