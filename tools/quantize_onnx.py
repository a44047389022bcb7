"""INT8 post-training quantization of an exported detector (dense or pruned) with ONNX Runtime, judged by mAP.

    python tools/quantize_onnx.py CONFIG MODEL.onnx OUT_int8.onnx [--calib-images 200] [--seed 0]
           [--tolerance 1.0] [--no-check]

Static QDQ quantization (``onnxruntime.quantization.quantize_static``): per-channel int8 weights, int8
activations calibrated on ``--calib-images`` images of the config's train split (through its test pipeline,
``--seed`` choosing which); only the network (convolutions and what feeds them) is quantized, box decoding and
NMS stay fp32 (``mmdet_adasap.deploy.quantize``). The export's metadata is kept, with ``precision: int8`` and
the calibration record added. The check is accuracy, not element parity: clean mAP of OUT_int8.onnx against
MODEL.onnx on the config's val split (test without one), both run by ONNX Runtime through the robustness tool's
path; a drop beyond ``--tolerance`` points exits 1. Evaluate its robustness with
``tools/test_robustness.py CONFIG OUT_int8.onnx --backend onnxruntime``.
"""
import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, load_config, run_tool
from mmdet_adasap.deploy.quantize import (ACTIVATION_TYPES, DEFAULT_CALIB_IMAGES, DEFAULT_TOLERANCE, accuracy_check,
                                          check_onnx_file, file_sizes, fp32_ops_line, quantize_detector,
                                          quantized_summary)


def parse_args(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='the model config (configs/pruned/... for a pruned export)')
    p.add_argument('model', help='the fp32 .onnx file from tools/export_onnx.py')
    p.add_argument('out', help='the INT8 .onnx file to write (its folder must exist)')
    p.add_argument('--calib-images', type=int, default=DEFAULT_CALIB_IMAGES,
                   help=f'calibration images from the train split (default {DEFAULT_CALIB_IMAGES})')
    p.add_argument('--seed', type=int, default=0, help='which train images calibrate (default 0)')
    p.add_argument('--activations', choices=ACTIVATION_TYPES, default='uint8',
                   help='8-bit type of the activations: uint8 (U8S8, fast on x86-64) or int8 (S8S8; default uint8)')
    p.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                   help=f'largest clean mAP drop accepted, in points (default {DEFAULT_TOLERANCE:g})')
    p.add_argument('--no-check', action='store_true', help='skip the fp32 vs int8 mAP comparison')
    p.add_argument('--threads', type=int, help='ONNX Runtime threads of the evaluation (default: all cores)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.tolerance >= 0:
        raise ValueError(f'--tolerance is the largest mAP drop accepted, in points (>= 0), got {args.tolerance}')
    check_onnx_file(args.model)  # named before the config is read
    cfg = load_config(args.config)
    meta = quantize_detector(args.model, args.out, cfg, args.calib_images, args.seed, activations=args.activations)
    q = quantized_summary(args.out)
    fp32_size, int8_size = file_sizes(args.model, args.out)
    print(f'wrote {args.out}: INT8 QDQ, calibrated on {meta["calibration"]["source"]}; quantized '
          f'{", ".join(f"{n} {k}" for k, n in meta["quantization"]["quantized_ops"].items())}; '
          f'{q["quantize"]} QuantizeLinear / {q["dequantize"]} DequantizeLinear; decoding and NMS fp32')
    line = fp32_ops_line(meta['quantization']['fp32_network_ops'])
    if line:
        print(line)
    print(f'size: fp32 {fp32_size / 2 ** 20:.2f} MiB, int8 {int8_size / 2 ** 20:.2f} MiB '
          f'({int8_size / fp32_size:.2f}x)')
    if args.no_check:
        return 0
    result = accuracy_check(cfg, args.model, args.out, args.tolerance, args.threads)
    print(result['line'])
    if not result['ok']:
        raise ValueError(f'{args.out} loses {result["drop"]:.2f} mAP points against {args.model} '
                         f'(fp32 {result["fp32"] * 100:.2f}, int8 {result["int8"] * 100:.2f}), beyond the '
                         f'tolerance of {result["tolerance"]:g}: calibrate on more images (--calib-images) '
                         'or keep fp32')
    return 0


if __name__ == '__main__':
    run_tool(main)
