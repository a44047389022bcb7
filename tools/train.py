"""Train a detector (mmdet's tools/train.py with the mmdet_adasap plugin loaded)."""
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, add_common_args, fill_channels, load_config, parse_common, run_tool
from mmdet_adasap.engine.optim_wrappers import amp_variant_of


def parse_args():
    p = ToolParser(description='Train a detector')
    p.add_argument('config', help='train config file path')
    p.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    p.add_argument('--auto-scale-lr', action='store_true', help='enable automatic LR scaling')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from this checkpoint, or (no value) from the latest one in the work dir; with no '
                        'checkpoint there the run starts from load_from (a pruning run never starts at random)')
    return parse_common(add_common_args(p))


def set_resume(cfg, resume) -> str:
    """Apply ``--resume`` to ``cfg``; returns what the run starts from, for the log. Without a value it resumes
    the work dir's latest checkpoint, and when there is none it keeps ``load_from`` (mmdet's own tool clears it,
    so that a pruning run would start from random weights)."""
    if resume is None:
        return f'load_from {cfg.get("load_from")}'
    if resume != 'auto':
        cfg.resume, cfg.load_from = True, resume
        return f'resuming {resume}'
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None and cfg.get('load_from'):
        cfg.resume = False
        return f'--resume: no checkpoint to resume in {cfg.work_dir}; starting from load_from {cfg.load_from}'
    cfg.resume, cfg.load_from = True, None
    return f'resuming the latest checkpoint in {cfg.work_dir}: {latest}'


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    if args.amp:
        cfg.optim_wrapper.type = amp_variant_of(cfg.optim_wrapper.get('type', 'OptimWrapper'))
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    fill_channels(cfg, args.resume if args.resume not in (None, 'auto') else cfg.get('load_from')
                  or find_latest_checkpoint(cfg.work_dir))  # a pruned config takes its shapes from the checkpoint
    start = set_resume(cfg, args.resume)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.resume is not None:
        print_log(start, logger='current')
    runner.train()


if __name__ == '__main__':
    run_tool(main)
