"""Corruption robustness of a detector checkpoint: clean + every (corruption, severity), P / mPC / rPC.

Reads complete sets from a VOC-C cache (tools/make_voc_c.py) and corrupts on the fly otherwise. Finished
sets are kept in OUT/sets/, so rerunning the same command resumes. Several GPUs: the normal launcher, e.g.
``torchrun --nproc_per_node=8 tools/test_robustness.py CONFIG CKPT --out DIR --launcher pytorch``.

    python tools/test_robustness.py CONFIG CKPT --out DIR [--corruptions benchmark] [--severities 1 2 3 4 5]
           [--cache data/synthetic_voc_c]
    # the deployed model: an ONNX export (tools/export_onnx.py) run by ONNX Runtime, same loop and metric
    python tools/test_robustness.py CONFIG MODEL.onnx --backend onnxruntime --out DIR ...
    # any mmdet metric: the config's test_evaluator (VOCMetric, CocoMetric, ...), P / mPC / rPC on one key
    python tools/test_robustness.py COCO_CONFIG CKPT --out DIR --metric-key coco/bbox_mAP_50 ...
Writes OUT/robustness.json, OUT/robustness.md, OUT/severity_curves.png, OUT/corruption_bars.png.
"""
import os

from mmengine.config import DictAction

import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.corruptions import SEVERITIES, check_severities, resolve_corruptions
from mmdet_adasap.robustness.report import pct


def parse_args():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='checkpoint (.pth), or with --backend onnxruntime the exported .onnx')
    p.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch')
    p.add_argument('--out', required=True, help='output directory (results, per-set records, plots)')
    p.add_argument('--corruptions', nargs='+', default=['benchmark'],
                   help='benchmark (default) | all | holdout | noise | blur | weather | digital | names')
    p.add_argument('--severities', nargs='+', type=int, default=list(SEVERITIES))
    p.add_argument('--cache', help='VOC-C cache root from tools/make_voc_c.py')
    p.add_argument('--metric-key', help='key of the evaluator results for P / mPC / rPC (default: pascal_voc/mAP '
                   'for VOCMetric, coco/bbox_mAP for CocoMetric; e.g. coco/bbox_mAP_50)')
    p.add_argument('--seed', type=int, default=0, help='base seed of on-the-fly corruptions (= the cache seed)')
    p.add_argument('--label', help='model name in reports (default: checkpoint file name)')
    p.add_argument('--no-resume', action='store_true', help='recompute sets already in OUT')
    p.add_argument('--no-plots', action='store_true')
    p.add_argument('--work-dir', help='logs (default: OUT)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    corruptions = resolve_corruptions(args.corruptions)  # validated before any model is built
    severities = check_severities(args.severities)
    result = evaluate_robustness(args.config, args.checkpoint, args.out, corruptions, severities,
                                 cache_root=args.cache, seed=args.seed, resume=not args.no_resume,
                                 label=args.label, plots=not args.no_plots, cfg_options=args.cfg_options,
                                 work_dir=args.work_dir, launcher=args.launcher, backend=args.backend,
                                 metric_key=args.metric_key)
    from mmengine.dist import is_main_process
    if result is not None and is_main_process():
        s = result['summary']
        print(f"[{s['metric_key']}] P {pct(s['P'])}  mPC {pct(s['mPC'])}  rPC {pct(s['rPC'])}%  "
              f"-> {args.out}/robustness.md")


if __name__ == '__main__':
    run_tool(main)
