"""The RTMDet / YOLOX pruning configs train on the tiny synthetic VOCdevkit: on synthetic VOC, AdaSAP runs all
three phases (warm-up, pruning through the CSP blocks' channel slices, fine-tune on the physically pruned
network with the EMA copy sliced alike), exports, and the export evaluates through ``configs/pruned/``; every
synthetic variant (L2 + SGD, AdaSAP_L with a latency table of this machine) and the real-VOC AdaSAP configs
(at 160 px) build and run one iteration in their pruning phase with their own optimizer step; the real-VOC
L2 + SGD configs are their AdaSAP config with the plain step."""
import functools
import os.path as osp
import time
from unittest import mock

import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.runner import Runner

from helpers import shrink_adasap_for_smoke_test, shrink_for_smoke_test, shrink_scales
from mmdet_adasap.apis import build_detector, fill_channels, load_config
from mmdet_adasap.engine import AdaptiveRadius
from mmdet_adasap.pruning import build_channel_groups
from mmdet_adasap.pruning import ingraph, latency_measure
from mmdet_adasap.pruning.latency_measure import measure_latency_table
from mmdet_adasap.pruning.latency_table import save_table
from mmdet_adasap.utils.timing import time_round_robin

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYNTHETIC = ['rtmdet-tiny_synthvoc', 'yolox-s_synthvoc']
REAL_VOC = ['rtmdet-tiny_voc0712', 'rtmdet-s_voc0712', 'yolox-s_voc0712']


def _cfg(model, method, tiny_voc, work_dir, phase_iters, side=None):
    cfg = load_config(osp.join(REPO, f'configs/adasap/{model}_{method}.py'))
    if 'voc0712' in model:
        shrink_scales(cfg, 160)
    if side is not None:
        shrink_scales(cfg, side, base=cfg.input_size)
    return shrink_adasap_for_smoke_test(cfg, tiny_voc, work_dir, phase_iters)


def _hook(runner, kind):
    return next(h for h in runner.hooks if isinstance(h, kind))


@pytest.mark.parametrize('model', SYNTHETIC)
def test_synthetic_adasap_prunes_the_csp_slices_switches_exports_and_evaluates(model, tiny_voc, tmp_path):
    runner = Runner.from_cfg(_cfg(model, 'adasap_flops50', tiny_voc, str(tmp_path), (1, 1, 1)))
    runner.train()
    hub = runner.message_hub
    assert list(hub.get_scalar('train/adasap_phase').data[0]) == [0, 1, 2]
    assert list(hub.get_scalar('train/rho_max').data[0]) == [2.0, 2.0, 0.5]
    adasap = next(h for h in runner.hooks if type(h).__name__ == 'AdaSAPHook')
    assert adasap.physical_state['cost_ratio'] <= 0.5
    live = {k: v.shape for k, v in runner.model.state_dict().items()}
    ema = {k: v.shape for k, v in _hook(runner, EMAHook).ema_model.module.state_dict().items()}
    assert ema == live, 'the EMA copy is sliced with the model at the physical switch'
    pruned = osp.join(str(tmp_path), 'pruned.pth')
    ckpt = torch.load(pruned, map_location='cpu', weights_only=False)
    assert {k: v.shape for k, v in ckpt['state_dict'].items()} == live
    records = ckpt['meta']['adasap_channels']
    assert any(r['pruned'].get('out_channels', 0) < r['dense'].get('out_channels', 0) for r in records.values())

    cfg = shrink_for_smoke_test(load_config(osp.join(REPO, f'configs/pruned/{model}_pruned.py')), tiny_voc,
                                str(tmp_path / 'test'))
    cfg.load_from = pruned
    fill_channels(cfg, pruned)  # as tools/test.py does: the channel record of the checkpoint
    tester = Runner.from_cfg(cfg)
    metrics = tester.test()
    assert 0.0 <= metrics['pascal_voc/mAP'] <= 1.0
    assert {k: v.shape for k, v in tester.model.state_dict().items()} == live, 'built at the pruned shapes'


def _latency_table(cfg, path, side):
    """A coarse table of this machine for the config's detector at batch 1 (the test's target batch), timed in
    this process's CPU time: one round of wall time on a loaded machine (the suite beside an experiment) put the
    smallest RTMDet-tiny at 1.07 of dense and the target out of reach; CPU time charges each call only its own
    work."""
    model, _ = build_detector(cfg)
    groups = build_channel_groups(model, (1, 3, side, side))
    cpu_time = functools.partial(time_round_robin, clock=time.process_time)
    with mock.patch.object(latency_measure, 'time_round_robin', cpu_time), \
            mock.patch.object(ingraph, 'time_round_robin', cpu_time):
        table = measure_latency_table(groups, batch=1, threads=1, points=2, repeats=1, model_repeats=1,
                                      calibrate=False, show_progress=False)
    save_table(table, path)


@pytest.mark.parametrize('variant', [(m, k) for m in SYNTHETIC for k in ('l2prune_sgd_flops50', 'adasap_latency50')]
                         + [(m, 'adasap_flops50') for m in REAL_VOC], ids=lambda v: f'{v[0]}_{v[1]}')
def test_variant_builds_and_runs_one_pruning_iteration(variant, tiny_voc, tmp_path):
    model, method = variant
    latency = method == 'adasap_latency50'
    cfg = _cfg(model, method, tiny_voc, str(tmp_path), (0, 1, 0), side=128 if latency else None)
    hook = cfg.default_hooks.adasap
    if latency:  # timing a table costs ~4x less at 128 px
        hook.latency_table = str(tmp_path / 'latency.json')
        _latency_table(cfg, hook.latency_table, 128)
        hook.pruning.target.update(batch=1, ratio=0.95)  # 128 px, batch 1: RTMDet-tiny's floor is ~0.9 of dense
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    assert runner.adasap_pruner.cost_ratio() <= hook.pruning.target.ratio  # FLOPs, or the table's latency
    if method.startswith('l2prune'):
        assert 'train/eps_norm' not in runner.message_hub.log_scalars
    else:
        assert runner.optim_wrapper.sam_steps == 1 and isinstance(runner.optim_wrapper.radius_policy, AdaptiveRadius)


@pytest.mark.parametrize('model', SYNTHETIC + REAL_VOC)
def test_l2prune_sgd_is_the_adasap_config_with_the_plain_optimizer_step(model):
    """The baseline differs from AdaSAP only in the step: same optimizer (the recipe's, with its parameter-wise
    decay settings), schedule, pruner and hooks (the synthetic ones also train above; the real-VOC ones build and
    prune like their AdaSAP config)."""
    adasap = load_config(osp.join(REPO, f'configs/adasap/{model}_adasap_flops50.py'))
    l2 = load_config(osp.join(REPO, f'configs/adasap/{model}_l2prune_sgd_flops50.py'))
    plain = {k: v for k, v in adasap.optim_wrapper.items() if k != '_scope_'}
    assert l2.optim_wrapper == dict(plain, type='OptimWrapper')
    assert 'paramwise_cfg' in l2.optim_wrapper
    assert (l2.train_cfg, l2.param_scheduler, l2.custom_hooks) == (adasap.train_cfg, adasap.param_scheduler,
                                                                  adasap.custom_hooks)
    hook, ref = l2.default_hooks.adasap, adasap.default_hooks.adasap
    assert hook.warmup.sharpness is None and hook.finetune.sharpness is None
    assert hook.pruning == ref.pruning and (hook.warmup.end, hook.pruning.end) == (ref.warmup.end, ref.pruning.end)
    assert ref.warmup.sharpness.radius.type == 'AdaptiveRadius' and ref.finetune.sharpness == dict(rho=0.5,
                                                                                                  adaptive=True)
