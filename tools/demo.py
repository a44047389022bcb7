"""The main job on the shipped synthetic data: generate data (if absent) -> train the dense demo detector
-> evaluate it -> print a summary. Each finished step is reused on rerun; an interrupted training resumes.

    python tools/demo.py [--work-dir work_dirs] [--retrain]
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DENSE_CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
DATA_ROOT = osp.join(REPO, 'data/synthetic_voc')


def step(title):
    print(f'\n=== {title} ===', flush=True)


def ensure_data():
    step('1/3 synthetic VOC data')
    if osp.isdir(osp.join(DATA_ROOT, 'VOCdevkit')):
        print(f'reusing {DATA_ROOT}/VOCdevkit')
        return
    from mmdet_adasap.datasets import make_synthetic_voc
    make_synthetic_voc(DATA_ROOT, workers=os.cpu_count() or 1)


def train(config, work_dir, retrain):
    """Train through tools/train.py (the user's path); resume a partial run, reuse a finished one."""
    from mmengine.config import Config
    step(f'2/3 train {osp.basename(config)}')
    max_epochs = Config.fromfile(config).train_cfg.max_epochs
    final = osp.join(work_dir, f'epoch_{max_epochs}.pth')
    if osp.isfile(final) and not retrain:
        print(f'reusing finished run in {work_dir}')
        return None
    cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work_dir]
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')) and not retrain:
        cmd.append('--resume')
        print('resuming the interrupted run')
    start = time.time()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.time() - start


def best_checkpoint(work_dir):
    best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
    if best:
        return best[-1]
    epochs = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')), key=osp.getmtime)
    if not epochs:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return epochs[-1]


def evaluate(config, checkpoint, work_dir):
    """Clean VOC07 AP50 of a checkpoint, through the same runner tools/test.py uses."""
    from mmengine.runner import Runner

    from mmdet_adasap.apis import load_config
    step(f'3/3 evaluate {osp.basename(checkpoint)}')
    cfg = load_config(config, work_dir=osp.join(work_dir, 'eval'))
    cfg.load_from = checkpoint
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg).test()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs'))
    p.add_argument('--retrain', action='store_true', help='train again even if a finished run exists')
    args = p.parse_args()
    os.chdir(REPO)  # configs use repo-relative data roots
    import mmdet_adasap  # noqa: F401

    start = time.time()
    ensure_data()
    dense_dir = osp.join(args.work_dir, 'demo_dense')
    train_s = train(DENSE_CONFIG, dense_dir, args.retrain)
    ckpt = best_checkpoint(dense_dir)
    metrics = evaluate(DENSE_CONFIG, ckpt, dense_dir)
    summary = dict(model='dense', checkpoint=ckpt, clean_mAP=metrics['pascal_voc/mAP'],
                   train_seconds=None if train_s is None else round(train_s, 1),
                   total_seconds=round(time.time() - start, 1))
    with open(osp.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    step('summary')
    print(f"| model | clean mAP (VOC07 AP50) | train time |\n|---|---|---|\n"
          f"| dense demo SSD | {summary['clean_mAP']:.3f} | "
          f"{'reused' if train_s is None else f'{train_s / 60:.1f} min'} |")
    print(f'checkpoint: {ckpt}\nsummary: {osp.join(args.work_dir, "demo_summary.json")}')


if __name__ == '__main__':
    main()
