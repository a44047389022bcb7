"""Train a detector (mmdet's tools/train.py with the mmdet_adasap plugin loaded)."""
import argparse

from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import add_common_args, fill_channels, load_config, parse_common
from mmdet_adasap.engine.optim_wrappers import amp_variant_of


def parse_args():
    p = argparse.ArgumentParser(description='Train a detector')
    p.add_argument('config', help='train config file path')
    p.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    p.add_argument('--auto-scale-lr', action='store_true', help='enable automatic LR scaling')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from this checkpoint, or (no value) from the latest one in the work dir')
    return parse_common(add_common_args(p))


def main():
    args = parse_args()
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir)
    except FileNotFoundError as e:
        raise SystemExit(f'error: {e}')
    cfg.launcher = args.launcher
    if args.amp:
        cfg.optim_wrapper.type = amp_variant_of(cfg.optim_wrapper.get('type', 'OptimWrapper'))
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit('error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    fill_channels(cfg, args.resume if args.resume not in (None, 'auto') else cfg.get('load_from')
                  or find_latest_checkpoint(cfg.work_dir))  # a pruned config takes its shapes from the checkpoint
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
