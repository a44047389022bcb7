"""Evaluate a checkpoint (mmdet's tools/test.py with the mmdet_adasap plugin loaded)."""
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet.evaluation import DumpDetResults

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, add_common_args, fill_channels, load_config, parse_common, run_tool


def parse_args():
    p = ToolParser(description='Test (and eval) a detector checkpoint')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--out', help='dump raw predictions to this pickle file')
    p.add_argument('--show-dir', help='save images with drawn predictions under work_dir/timestamp/SHOW_DIR')
    return parse_common(add_common_args(p))


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint!r} does not exist')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    fill_channels(cfg, args.checkpoint)  # a pruned config takes its shapes from the checkpoint
    if args.show_dir:
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=args.show_dir)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('error: --out must be a .pkl file')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    run_tool(main)
