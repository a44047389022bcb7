"""The AdaSAP phase configs: every variant builds and trains on the tiny synthetic VOCdevkit.

For each detector: ``*_adasap_flops50`` runs all three phases (one iteration each), exports and evaluates. Each
of the other five variants (``_adasap_flops25``, ``_sam_asam_*``, ``_l2prune_sgd_*``) builds and runs one
iteration, in the pruning phase (its own sharpness step and its own pruning target), on the lightest detector.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from helpers import SMOKE_SCALES, shrink_adasap_for_smoke_test
from mmdet_adasap.apis import load_config
from mmdet_adasap.engine import AdaptiveRadius, UniformRadius

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = ['ssd-r18mini_synthvoc', *SMOKE_SCALES]
METHODS = ['adasap', 'sam_asam', 'l2prune_sgd']
SCALES = dict(SMOKE_SCALES, **{'ssd-r18mini_synthvoc': None})
LATENCY_MODELS = ['ssd-r18mini_synthvoc', 'ssd300_voc0712', 'ssd512_voc0712']  # AdaSAP_L (HALP knapsack)
RTMDET_YOLOX_VARIANTS = {f'{m}_{k}_flops50.py' for m in ('rtmdet-tiny_synthvoc', 'yolox-s_synthvoc', 'rtmdet-tiny_voc0712',
                                                          'rtmdet-s_voc0712', 'yolox-s_voc0712')
                         for k in ('adasap', 'l2prune_sgd')} | {'rtmdet-tiny_synthvoc_adasap_latency50.py',
                                                                'yolox-s_synthvoc_adasap_latency50.py'}


def _path(model, method, flops):
    return osp.join(REPO, f'configs/adasap/{model}_{method}_flops{flops}.py')


def test_every_detector_has_every_variant_with_one_schedule():
    found = {osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs/adasap/*.py'))}
    expected = {osp.basename(_path(m, k, f)) for m in MODELS for k in METHODS for f in (50, 25)}
    expected |= {f'{m}_{k}_latency50.py' for m in LATENCY_MODELS for k in ('adasap', 'l2prune_sgd')}
    expected |= RTMDET_YOLOX_VARIANTS  # their own tests: tests/test_configs/test_rtmdet_yolox_configs.py
    assert found == expected
    for model in MODELS:
        ref = load_config(_path(model, 'adasap', 50))
        for method in METHODS:
            for flops in (50, 25):
                cfg = load_config(_path(model, method, flops))
                hook = cfg.default_hooks.adasap
                assert hook.pruning.target == dict(type='flops', ratio=flops / 100)
                # same schedule as the method: phases, epochs, learning rate, pruner
                assert cfg.train_cfg == ref.train_cfg and cfg.param_scheduler == ref.param_scheduler
                assert cfg.optim_wrapper.optimizer == ref.optim_wrapper.optimizer
                assert (hook.warmup.end, hook.pruning.end) == (ref.default_hooks.adasap.warmup.end,
                                                               ref.default_hooks.adasap.pruning.end)
                assert hook.pruning.schedule == ref.default_hooks.adasap.pruning.schedule
                warm, fine = hook.warmup.sharpness, hook.finetune.sharpness
                if method == 'l2prune_sgd':
                    assert cfg.optim_wrapper.type == 'OptimWrapper' and warm is None and fine is None
                else:
                    assert cfg.optim_wrapper.type == 'SAMOptimWrapper'
                    assert fine == dict(rho=0.5, adaptive=True)  # uniform ASAM fine-tune
                    if method == 'adasap':
                        assert warm.radius.type == 'AdaptiveRadius' and warm.adaptive
                    else:
                        assert 'radius' not in warm and warm.adaptive is False  # uniform SAM warm-up


@pytest.mark.parametrize('model', LATENCY_MODELS)
def test_latency_variants_are_the_flops50_schedule_with_a_latency_knapsack(model):
    ref = load_config(_path(model, 'adasap', 50))
    for method in ('adasap', 'l2prune_sgd'):
        path = osp.join(REPO, f'configs/adasap/{model}_{method}_latency50.py')
        cfg = load_config(path)
        hook = cfg.default_hooks.adasap
        batch = 8 if model == 'ssd-r18mini_synthvoc' else 1  # the demo's batch-1 floor is ~0.53 of dense
        assert hook.pruning.target == dict(type='latency', ratio=0.5, batch=batch, device='cpu', threads=1)
        assert hook.pruning.ranking == 'knapsack' and '_latency_cpu1' in hook.latency_table
        assert hook.pruning.importance == dict(type='taylor', normalize=None)  # HALP's: comparable across layers
        assert hook.pruning.schedule == ref.default_hooks.adasap.pruning.schedule
        assert cfg.train_cfg == ref.train_cfg and (hook.warmup.sharpness is None) == (method == 'l2prune_sgd')
        with open(path) as f:
            assert f'--out {hook.latency_table}' in f.read(), 'the header says how to build the table'


def _train(model, method, flops, phase_iters, tiny_voc, tmp_path):
    cfg = shrink_adasap_for_smoke_test(load_config(_path(model, method, flops)), tiny_voc, str(tmp_path),
                                       phase_iters, scale=SCALES[model])
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('model', list(SMOKE_SCALES))
def test_real_voc_adasap_runs_all_three_phases_and_exports(model, tiny_voc, tmp_path):
    runner = _train(model, 'adasap', 50, (1, 1, 1), tiny_voc, tmp_path)
    hub = runner.message_hub
    assert list(hub.get_scalar('train/adasap_phase').data[0]) == [0, 1, 2]
    assert list(hub.get_scalar('train/rho_max').data[0]) == [2.0, 2.0, 0.5]
    assert all(v > 0 for v in hub.get_scalar('train/eps_norm').data[0])
    assert hub.get_scalar('train/flops_ratio').current() <= 0.5  # dense-relative, also after the physical switch
    assert next(h for h in runner.hooks if type(h).__name__ == 'AdaSAPHook').physical_state['cost_ratio'] <= 0.5
    assert isinstance(runner.optim_wrapper.radius_policy, UniformRadius)
    ckpt = torch.load(osp.join(str(tmp_path), 'pruned.pth'), map_location='cpu', weights_only=False)
    config = ckpt['meta']['adasap_channels']
    assert any(r['pruned'].get('out_channels', 0) < r['dense'].get('out_channels', 0) for r in config.values())
    live = runner.model.state_dict()  # the fine-tune ran on the physically pruned model: it is the export
    assert {k: v.shape for k, v in ckpt['state_dict'].items()} == {k: v.shape for k, v in live.items()}
    metrics = runner.test()  # the dense config's test loop (tests/test_configs/test_voc_configs.py), via VOCMetric
    assert 0.0 <= metrics['pascal_voc/mAP'] <= 1.0


# Each of the other five variants once, on the lightest real-VOC detector: the first test asserts that a variant
# differs from ``*_adasap_flops50`` only in its sharpness step and target, and the three-phase test above runs
# every detector through every phase (adaptive SAM, pruning, uniform ASAM), so one iteration of each variant's own
# step and target is what is left to show.
_VARIANTS = [('adasap', 25), ('sam_asam', 50), ('sam_asam', 25), ('l2prune_sgd', 50), ('l2prune_sgd', 25)]


@pytest.mark.parametrize('variant', [('ssdlite-mbv2_voc0712', k, f) for k, f in _VARIANTS],
                         ids=lambda v: f'{v[0]}_{v[1]}_flops{v[2]}')
def test_real_voc_variant_builds_and_runs_one_iteration(variant, tiny_voc, tmp_path):
    model, method, flops = variant
    runner = _train(model, method, flops, (0, 1, 0), tiny_voc, tmp_path)
    assert runner.iter == 1
    assert runner.adasap_pruner.cost_ratio() <= flops / 100
    policy = getattr(runner.optim_wrapper, 'radius_policy', None)
    if method == 'l2prune_sgd':
        assert 'train/eps_norm' not in runner.message_hub.log_scalars
    else:
        assert runner.optim_wrapper.sam_steps == 1
        assert isinstance(policy, AdaptiveRadius if method == 'adasap' else UniformRadius)
        assert runner.optim_wrapper.adaptive == (method == 'adasap')
