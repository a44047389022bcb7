"""A pruning run's input is the trained ``load_from``: ``tools/train.py --resume`` into a work dir with no checkpoint
starts from ``load_from`` (logged), and a run whose weights were neither loaded nor resumed is refused by the
pruning hooks (mmdet's own ``tools/train.py --resume`` clears ``load_from``), unless ``allow_random_init=True``."""
import os
import os.path as osp
import shutil

import pytest
import torch

from mmengine.runner import Runner

from conftest import REPO, run_tool
from helpers import load_tool, shrink_for_smoke_test, state_digest
from mmdet_adasap.apis import load_config
from mmdet_adasap.engine.hooks import AdaSAPHook, PruningHook
from test_tools.test_pruned_multiprocess import DENSE_START, MMDET_TOOLS
from test_tools.test_train_test_tools import tiny_overrides

ADASAP = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
train_tool = load_tool('train')
#: the shipped phases shrunk to 2 epochs of the tiny set: warm-up 1, pruning 1 (one step), no fine-tune
SHORT = ['default_hooks.adasap.pruning.end=2', 'default_hooks.adasap.pruning.schedule.steps=1']


def _overrides(tiny_voc):
    over = tiny_overrides(tiny_voc, 2)
    return [*over, *SHORT, f'load_from={osp.join(REPO, DENSE_START)}']


def _runner(tiny_voc, work, resume):
    cfg = shrink_for_smoke_test(load_config(osp.join(REPO, ADASAP)), tiny_voc, work, samples=4)
    cfg.load_from = osp.join(REPO, DENSE_START)
    start = train_tool.set_resume(cfg, resume)
    return Runner.from_cfg(cfg), start


def test_resume_into_an_empty_work_dir_starts_from_load_from(tiny_voc, tmp_path):
    work = str(tmp_path / 'new')
    runner, start = _runner(tiny_voc, work, 'auto')
    assert start == f'--resume: no checkpoint to resume in {work}; starting from load_from {runner.cfg.load_from}'
    runner.load_or_resume()
    dense = torch.load(osp.join(REPO, DENSE_START), map_location='cpu', weights_only=False)['state_dict']
    assert runner._has_loaded and not runner._resume
    assert state_digest(runner.model.state_dict()) == state_digest(dense), 'the run starts from the dense start'


def test_resume_with_a_checkpoint_in_the_work_dir_resumes_it(tiny_voc, tmp_path):
    work = str(tmp_path / 'run')
    os.makedirs(work)
    shutil.copy(osp.join(REPO, DENSE_START), osp.join(work, 'epoch_1.pth'))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:  # what mmengine's CheckpointHook leaves
        f.write(osp.join(work, 'epoch_1.pth'))
    runner, start = _runner(tiny_voc, work, 'auto')
    assert start == f'resuming the latest checkpoint in {work}: {osp.join(work, "epoch_1.pth")}'
    assert runner._resume and runner.cfg.load_from is None


def test_mmdet_train_resume_with_no_checkpoint_is_refused_not_pruned_at_random(tiny_voc, tmp_path):
    work = str(tmp_path / 'new')
    proc = run_tool(osp.join(MMDET_TOOLS, 'train.py'), ADASAP, '--work-dir', work, '--resume',
                    *_overrides(tiny_voc))
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not osp.exists(osp.join(work, 'pruned.pth')), log[-3000:]
    assert "AdaSAPHook: the detector's weights were neither loaded (load_from=None)" in log, log[-3000:]
    assert f'no checkpoint to resume in {work!r}' in log and 'allow_random_init=True' in log, log[-3000:]


class _Runner:
    def __init__(self, loaded):
        self._has_loaded, self.work_dir, self.cfg = loaded, '/runs/x', dict(load_from=None)


@pytest.mark.parametrize('hook_type', [PruningHook, AdaSAPHook])
def test_allow_random_init_lets_random_weights_through_and_must_be_a_bool(hook_type):
    args = dict(warmup=dict(end=1, sharpness=None), pruning=dict(end=2), finetune=dict(sharpness=None)) \
        if hook_type is AdaSAPHook else {}
    hook_type(**args).check_weights_loaded(_Runner(loaded=True))
    with pytest.raises(ValueError, match=r"neither loaded \(load_from=None\) nor resumed .* '/runs/x'"):
        hook_type(**args).check_weights_loaded(_Runner(loaded=False))
    hook_type(**args, allow_random_init=True).check_weights_loaded(_Runner(loaded=False))
    with pytest.raises(TypeError, match=f"{hook_type.__name__}: allow_random_init must be True or False, got 'yes'"):
        hook_type(**args, allow_random_init='yes')
