"""tools/train.py with the SAM demo config on the tiny synthetic set, then --resume from its checkpoint."""
import glob
import json
import os.path as osp

import torch
from mmengine.config import Config

from conftest import REPO, run_tool
from helpers import shrink_for_smoke_test


def scalars(work_dir):
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):  # runs in time order
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def test_train_then_resume(tiny_voc, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_sam.py'))
    cfg = shrink_for_smoke_test(cfg, tiny_voc, work_dir, samples=2)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)  # no save_best: val is not the point
    cfg.train_cfg.val_interval = 100
    cfg_path = str(tmp_path / 'sam.py')
    cfg.dump(cfg_path)

    first = run_tool('tools/train.py', cfg_path)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu')
    per_epoch = ckpt['meta']['iter']  # the tiny train set is VOC2007 + VOC2012, 2 images each, batch 2
    assert per_epoch >= 1 and set(ckpt['optimizer']) == {'state', 'param_groups'}
    assert ckpt['optimizer']['state'], 'the stock SGD state (momentum) must be in the checkpoint'

    second = run_tool('tools/train.py', cfg_path, '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert second.returncode == 0, second.stderr[-3000:]
    ckpt2 = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    assert ckpt2['meta']['iter'] == 2 * per_epoch
    logged = [r for r in scalars(work_dir) if 'loss_perturbed' in r]
    # every iteration once over both runs: the second run continued at per_epoch + 1 instead of restarting
    assert [r['iter'] for r in logged] == list(range(1, 2 * per_epoch + 1))
    for r in logged:  # unperturbed loss, perturbed loss and ||eps|| logged
        assert r['eps_norm'] > 0 and r['loss'] > 0 and r['loss_perturbed'] > 0
