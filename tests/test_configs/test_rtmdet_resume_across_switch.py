"""An RTMDet-tiny AdaSAP run (its config's hooks: ExpMomentumEMA, pipeline switch) resumed across the physical
switch ends bit-identical to the uninterrupted run: from a checkpoint before the switch (masks only: the resumed
run prunes and switches itself) and from one after it (pruned shapes: the model, optimizer state and EMA copy are
re-shaped on resume)."""
import os.path as osp
import shutil

import pytest
import torch
from mmengine.runner import Runner

from helpers import shrink_adasap_for_smoke_test, state_digest
from mmdet_adasap.apis import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ADASAP = osp.join(REPO, 'configs/adasap/rtmdet-tiny_synthvoc_adasap_flops50.py')
PHASES = (1, 1, 2)  # warm-up: iteration 1; pruning: iteration 2 (one shot); fine-tune: 3-4, physically pruned
LAST = sum(PHASES)


def _cfg(tiny_voc, work_dir):
    cfg = shrink_adasap_for_smoke_test(load_config(ADASAP), tiny_voc, work_dir, PHASES, samples=4)
    # RTMDet's second-stage pipeline (random resize, crop, HSV, flip; RandomStateHook restores their draws). The
    # first stage's CachedMosaic / CachedMixUp keep images in the transform: a resumed run starts their caches
    # empty, so a resume there is not bit-identical
    stage2 = next(h for h in cfg.custom_hooks if h['type'] == 'PipelineSwitchHook').switch_pipeline
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.pipeline = stage2
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False)
    return cfg


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def reference(tiny_voc, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('rtmdet_reference')
    torch.set_num_threads(1)
    Runner.from_cfg(_cfg(tiny_voc, str(work_dir))).train()
    return work_dir


@pytest.mark.parametrize('resume_at', [1, 3], ids=['before_switch', 'after_switch'])
def test_rtmdet_adasap_resumed_across_the_physical_switch_is_bit_identical(resume_at, reference, tiny_voc,
                                                                          tmp_path):
    dense, pruned = _load(reference / 'iter_1.pth'), _load(reference / 'iter_3.pth')
    numel = lambda sd: sum(v.numel() for k, v in sd.items() if k != 'steps')  # noqa: E731  (EMA's counter)
    assert numel(pruned['state_dict']) < numel(dense['state_dict']), 'iter_3 is after the physical switch'
    assert numel(pruned['ema_state_dict']) == numel(pruned['state_dict']), 'the EMA copy is pruned alike'

    shutil.copy(reference / f'iter_{resume_at}.pth', tmp_path / f'iter_{resume_at}.pth')
    cfg = _cfg(tiny_voc, str(tmp_path))
    cfg.resume, cfg.load_from = True, str(tmp_path / f'iter_{resume_at}.pth')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == LAST
    ref, got = _load(reference / f'iter_{LAST}.pth'), _load(tmp_path / f'iter_{LAST}.pth')
    for key in ('state_dict', 'ema_state_dict'):  # the EMA weights (what val / test use) and the raw ones
        assert state_digest(got[key]) == state_digest(ref[key]), key
