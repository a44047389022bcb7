"""AdaSAPHook in real mmengine training runs of the demo detector on the tiny synthetic VOC set."""
import copy
import os.path as osp
import shutil

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import REPO, run_tool
from helpers import shrink_adasap_for_smoke_test, shrink_for_smoke_test
from mmdet_adasap.apis import load_config
from mmdet_adasap.engine import AdaptiveRadius, UniformRadius
from mmdet_adasap.engine.hooks.pruning_state import STATE_KEY, PruningState

ADASAP = osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py')


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Probe(Hook):
    """Records, right before each training step, what AdaSAPHook has set up for it."""
    priority = 'LOW'  # after AdaSAPHook (HIGH) has switched phases and refreshed the radii

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hook = next(h for h in runner.hooks if type(h).__name__ == 'AdaSAPHook')
        ow = runner.optim_wrapper
        self.seen.append(dict(
            iter=runner.iter, phase=hook.phase, steps_done=hook.pruner.steps_done, enabled=ow.sharpness_enabled,
            adaptive=ow.adaptive, rho=ow.rho, policy=ow.radius_policy,
            radii=[r.clone() for r in ow.radius_policy.channel_radii] if ow.radius_policy else None,
            masks={k: v.clone() for k, v in hook.pruner.masks.masks.items()},
            scores=copy.deepcopy(hook.pruner.last_importance)))


def _cfg(tiny_voc, work_dir, phase_iters=(2, 2, 2), steps=2, config=ADASAP, deterministic=False):
    cfg = shrink_adasap_for_smoke_test(load_config(config), tiny_voc, work_dir, phase_iters, samples=4)
    cfg.default_hooks.adasap.pruning.schedule = dict(type='exponential', steps=steps)
    if deterministic:  # resume must reproduce the run exactly: no random augmentation, no shuffling by time
        for t in cfg.train_dataloader.dataset.datasets[0].pipeline:
            if t['type'] == 'RandomFlip':
                t['prob'] = 0.0
        for d in cfg.train_dataloader.dataset.datasets:
            d.pipeline = cfg.train_dataloader.dataset.datasets[0].pipeline
        cfg.randomness = dict(seed=0)
    return cfg


def _train(cfg, probe=None):
    runner = Runner.from_cfg(cfg)
    if probe is not None:
        runner.register_hook(probe)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def phased_run(tiny_voc, tmp_path_factory):
    """One run with 2 warm-up, 2 pruning (2 exponential steps, HALP's knapsack) and 2 fine-tune iterations,
    masks-only (the physical switch has its own tests below)."""
    work_dir = str(tmp_path_factory.mktemp('phased'))
    probe = Probe()
    torch.set_num_threads(1)
    cfg = _cfg(tiny_voc, work_dir)
    cfg.default_hooks.adasap.pruning.ranking = 'knapsack'
    cfg.default_hooks.adasap.physical = False  # masks to the end: the probe reads them every iteration
    runner = _train(cfg, probe)
    return runner, probe.seen, work_dir


def test_phases_switch_at_the_configured_iterations(phased_run):
    runner, seen, _ = phased_run
    assert [s['phase'] for s in seen] == ['warmup'] * 2 + ['pruning'] * 2 + ['finetune'] * 2
    assert [s['steps_done'] for s in seen] == [0, 0, 0, 1, 2, 2], 'steps after iterations 2 and 3'
    for s in seen[:4]:  # warm-up and pruning: ASAM with the AdaSAP radius
        assert s['enabled'] and s['adaptive'] and isinstance(s['policy'], AdaptiveRadius)
        assert s['rho'] == 0.5  # the radius of parameters outside prunable groups
    for s in seen[4:]:  # fine-tune: uniform ASAM with its own rho
        assert s['enabled'] and s['adaptive'] and isinstance(s['policy'], UniformRadius) and s['rho'] == 0.5
        for r, m in zip(s['radii'], s['masks'].values()):
            assert torch.all(r[m] == 0.5) and torch.all(r[~m] == 0), 'pruned channels are never perturbed'
    hist = runner.message_hub.get_scalar('train/adasap_phase').data[0]
    assert list(hist) == [0, 0, 1, 1, 2, 2], 'the phase is logged every iteration'


def test_target_is_met_after_the_pruning_phase_and_logged(phased_run):
    runner, seen, work_dir = phased_run
    pruner = runner.adasap_pruner
    assert pruner.ranking == 'knapsack' and 0.45 < pruner.cost_ratio() <= 0.5
    hub = runner.message_hub
    flops = hub.get_scalar('train/flops_ratio').data[0]
    assert flops[0] == pytest.approx(1.0) and flops[-1] == pytest.approx(pruner.cost_ratio())
    kept = hub.get_scalar('train/kept_channels').data[0]
    assert kept[0] == 1.0 and kept[-1] < 1.0
    assert hub.get_scalar('train/params_ratio').data[0][-1] < 1.0
    assert hub.get_scalar('train/rho_max').data[0][0] == pytest.approx(2.0)
    assert hub.get_scalar('train/rho_min').data[0][-1] == pytest.approx(0.5)
    assert osp.isfile(osp.join(work_dir, 'pruned.pth'))


def test_warmup_radius_follows_importance_rho_max_for_least_important(phased_run):
    """The AdaSAP rule, checked against an independent computation of the normalised scores."""
    runner, seen, _ = phased_run
    for s in (seen[1], seen[3]):  # warm-up; pruning phase after the first step
        scores, masks, radii = s['scores'], s['masks'], s['radii']
        names = list(masks)
        # the pruner ranks globally with per-group mean normalisation; the radius rule uses the same scope
        norm = {n: scores[n].double() / scores[n][masks[n]].double().abs().mean() for n in names}
        alive = torch.cat([norm[n][masks[n]] for n in names])
        lo, hi = alive.min(), alive.max()
        for n, r in zip(names, radii):
            expect = 2.0 - (norm[n] - lo) / (hi - lo) * (2.0 - 0.01)
            assert torch.allclose(r[masks[n]].double(), expect[masks[n]], atol=1e-5)
            assert torch.all(r[~masks[n]] == 0)
        flat_r = torch.cat([r[masks[n]] for n, r in zip(names, radii)])
        flat_s = torch.cat([norm[n][masks[n]] for n in names])
        assert flat_r[flat_s.argmin()] == pytest.approx(2.0)  # least important: rho_max
        assert flat_r[flat_s.argmax()] == pytest.approx(0.01)  # most important: rho_min
    assert not all(m.all() for m in seen[3]['masks'].values()), 'second snapshot has pruned channels'


def test_knapsack_on_raw_taylor_scores_runs_the_three_phases(tiny_voc, tmp_path):
    """The AdaSAP_L configs' pruner (HALP's raw Taylor, a knapsack): gradients reach the scores before the first
    step, the radius ranks them (L2 stands in before any gradient), the target is met and the run exports."""
    cfg = _cfg(tiny_voc, str(tmp_path))
    cfg.default_hooks.adasap.pruning.update(ranking='knapsack', importance=dict(type='taylor', normalize=None))
    probe = Probe()
    runner = _train(cfg, probe)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'AdaSAPHook')
    assert hook.physical_state is not None and 0.45 < hook.physical_state['cost_ratio'] <= 0.5
    pruning = [s for s in probe.seen if s['phase'] == 'pruning']
    assert pruning and all(s['radii'] for s in pruning)
    raw = pruning[-1]['scores']  # raw Taylor: not normalised to mean 1 per group
    assert any(abs(float(v[pruning[-1]['masks'][k]].mean()) - 1.0) > 1e-3 for k, v in raw.items())
    assert osp.isfile(osp.join(str(tmp_path), 'pruned.pth'))


def test_exported_checkpoint_evaluates_through_tools_test(phased_run, tiny_voc, tmp_path, monkeypatch):
    runner, _, work_dir = phased_run
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    cfg = shrink_for_smoke_test(load_config(osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')),
                                tiny_voc, str(tmp_path / 'test'), samples=2)
    cfg_path = str(tmp_path / 'pruned_cfg.py')
    cfg.dump(cfg_path)
    proc = run_tool('tools/test.py', cfg_path, osp.join(work_dir, 'pruned.pth'), '--cfg-options', 'log_level=INFO',
                    timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'size mismatch' not in out and 'pascal_voc/mAP' in out  # built at the pruned shapes
    ckpt = torch.load(osp.join(work_dir, 'pruned.pth'), map_location='cpu', weights_only=False)
    kept = runner.adasap_pruner.masks.num_kept()
    name = next(n for n, k in kept.items() if k < runner.adasap_pruner.groups.by_name[n].size)
    assert ckpt['state_dict'][f'{name}.weight'].shape[0] == kept[name], 'physically smaller'


def _masks_and_steps(ckpt):
    state = PruningState.from_checkpoint(ckpt)
    record = state.physical if state.physical is not None else state.pruner
    return record['masks'], record['steps_done']


@pytest.mark.parametrize('resume_at', [1, 3, 5], ids=['warmup', 'pruning', 'finetune'])
def test_resume_in_each_phase_reproduces_the_uninterrupted_run(resume_at, tiny_voc, tmp_path_factory):
    """Checkpoints every iteration; radii refreshed every 2nd iteration (so the saved radii matter); the demo's
    random augmentation on (RandomStateHook restores its random state): bit-identical weights."""
    def cfg_for(work_dir):
        cfg = _cfg(tiny_voc, work_dir, phase_iters=(2, 3, 2))
        cfg.randomness = dict(seed=0, deterministic=True)
        cfg.default_hooks.adasap.warmup.sharpness.refresh_interval = 2
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False)
        return cfg

    base = tmp_path_factory.getbasetemp() / 'resume_reference'
    if not (base / 'iter_7.pth').exists():
        _train(cfg_for(str(base)))
    ref = torch.load(base / 'iter_7.pth', map_location='cpu', weights_only=False)
    start = torch.load(base / f'iter_{resume_at}.pth', map_location='cpu', weights_only=False)
    assert start[STATE_KEY]['phases']['phase'] == ['warmup', 'warmup', 'pruning', 'pruning', 'pruning', 'finetune'][resume_at - 1]

    work_dir = tmp_path_factory.mktemp(f'resume_{resume_at}')
    shutil.copy(base / f'iter_{resume_at}.pth', work_dir / f'iter_{resume_at}.pth')
    cfg = cfg_for(str(work_dir))
    cfg.resume, cfg.load_from = True, str(work_dir / f'iter_{resume_at}.pth')
    runner = _train(cfg)
    assert runner.iter == 7
    got = torch.load(work_dir / 'iter_7.pth', map_location='cpu', weights_only=False)
    (ref_masks, ref_steps), (got_masks, got_steps) = _masks_and_steps(ref), _masks_and_steps(got)
    for name, mask in ref_masks.items():
        assert torch.equal(got_masks[name], mask), name
    assert got_steps == ref_steps == 2
    for key, value in ref['state_dict'].items():
        assert torch.equal(got['state_dict'][key], value), key


# ---------------------------------------------------------------------------------------------- physical switch
class LossProbe(Hook):
    priority = 'LOW'

    def __init__(self):
        self.losses, self.params = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss']))
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self.params.append(sum(p.numel() for p in model.parameters()))


def test_physical_finetune_equals_masked_finetune_on_the_smaller_model(tiny_voc, tmp_path_factory):
    """The same deterministic run with masks to the end and with the physical switch at the end of the pruning
    phase: the same loss every iteration, the same exported weights and EMA; the fine-tune trains the small
    model (the SAM wrapper's plan rebuilt for it, optimizer state sliced). Float32: the masked and the small
    convolutions sum in different orders, and three ASAM steps (per-neuron normalised) amplify that to ~1e-4
    on near-zero weights."""
    from mmdet_adasap.pruning.surgery import kept_indices, slice_kept
    runs = {}
    for physical in (False, True):
        work_dir = str(tmp_path_factory.mktemp(f'physical_{physical}'))
        cfg = _cfg(tiny_voc, work_dir, phase_iters=(1, 2, 3), deterministic=True)
        cfg.optim_wrapper.optimizer.lr = 0.01  # the step size the tolerance below was sized for
        cfg.default_hooks.adasap.physical = physical
        cfg.custom_hooks = [dict(type='EMAHook', momentum=0.5)]
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=6, by_epoch=False)
        probe = LossProbe()
        runner = _train(cfg, probe)
        runs[physical] = (runner, probe, work_dir)
    (masked, mprobe, mdir), (phys, pprobe, pdir) = runs[False], runs[True]
    assert pprobe.losses == pytest.approx(mprobe.losses, rel=1e-4)
    # the switch comes after the last pruning-phase iteration (index 2), before this probe reads the model
    assert pprobe.params[:2] == mprobe.params[:2] and all(p < mprobe.params[0] for p in pprobe.params[2:])
    hook = next(h for h in phys.hooks if type(h).__name__ == 'AdaSAPHook')
    assert hook.physical_state['iter'] == 2 and phys.optim_wrapper.plan_builds >= 2
    for p in phys.optim_wrapper.optimizer.param_groups[0]['params']:
        for value in phys.optim_wrapper.optimizer.state[p].values():
            assert value.dim() == 0 or value.shape == p.shape
    exported = {k: torch.load(osp.join(d, 'pruned.pth'), map_location='cpu', weights_only=False)
                for k, d in ((False, mdir), (True, pdir))}
    assert exported[True]['meta']['adasap_channels'] == exported[False]['meta']['adasap_channels']
    for key, value in exported[False]['state_dict'].items():
        torch.testing.assert_close(exported[True]["state_dict"][key], value, rtol=1e-3, atol=2e-4, msg=key)
    pruner = masked.adasap_pruner
    kept = kept_indices(pruner.groups, pruner.masks.masks)
    ema_masked = torch.load(osp.join(mdir, 'iter_6.pth'), map_location='cpu', weights_only=False)['ema_state_dict']
    ema_phys = torch.load(osp.join(pdir, 'iter_6.pth'), map_location='cpu', weights_only=False)['ema_state_dict']
    for key, value in ema_phys.items():
        if key.startswith('module.') and value.dim() > 0:
            expected = slice_kept(ema_masked[key], kept.get(key[len('module.'):], {}))
            torch.testing.assert_close(value, expected, rtol=1e-3, atol=2e-4, msg=key)


def test_physical_switch_refuses_an_optimizer_it_cannot_slice_at_the_start(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.optim_wrapper.optimizer = dict(type='LBFGS', lr=0.01)
    _runner_error(tiny_voc, tmp_path, edit, TypeError, 'LBFGS is not one of them: set physical=False')


# ---------------------------------------------------------------------------------------------- bad input
def _runner_error(tiny_voc, tmp_path, edit, exc, match):
    cfg = _cfg(tiny_voc, str(tmp_path))
    edit(cfg)
    with pytest.raises(exc, match=match):
        _train(cfg)


def test_phase_ends_out_of_order_are_refused(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.default_hooks.adasap.warmup.end = 3
        cfg.default_hooks.adasap.pruning.end = 2
    _runner_error(tiny_voc, tmp_path, edit, ValueError, 'out of order')


def test_phase_end_beyond_training_is_refused(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.default_hooks.adasap.pruning.end = 7  # max_iters is 6
    _runner_error(tiny_voc, tmp_path, edit, ValueError, 'beyond the end of training')


def test_epoch_phases_beyond_max_epochs_are_refused(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
        cfg.default_hooks.adasap.update(by_epoch=True)
        cfg.default_hooks.adasap.warmup.end = 1
        cfg.default_hooks.adasap.pruning.end = 3
    _runner_error(tiny_voc, tmp_path, edit, ValueError, r'max_epochs=2')


def test_sharpness_phase_without_sam_wrapper_is_refused(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer)
    _runner_error(tiny_voc, tmp_path, edit, TypeError, 'SAMOptimWrapper')


def test_adaptive_radius_without_pruner_is_refused(tiny_voc, tmp_path):
    def edit(cfg):
        del cfg.default_hooks['adasap']
        cfg.optim_wrapper.radius_policy = dict(type='AdaptiveRadius')
    _runner_error(tiny_voc, tmp_path, edit, RuntimeError, 'AdaSAPHook')


def test_sam_wrapper_without_any_sharpness_phase_warns(tiny_voc, tmp_path):
    cfg = _cfg(tiny_voc, str(tmp_path), phase_iters=(0, 1, 0), steps=1)
    hook = cfg.default_hooks.adasap
    hook.warmup.sharpness = hook.finetune.sharpness = None
    with pytest.warns(UserWarning, match='plain steps throughout'):
        runner = _train(cfg)
    assert runner.optim_wrapper.sam_steps == 0


def test_target_already_met_is_refused_or_warned(phased_run, tiny_voc, tmp_path):
    from mmdet.registry import HOOKS
    cfg = _cfg(tiny_voc, str(tmp_path))
    with pytest.raises(ValueError, match='prunes nothing'):
        HOOKS.build(dict(cfg.default_hooks.adasap, pruning=dict(cfg.default_hooks.adasap.pruning,
                                                                 target=dict(type='flops', ratio=1.0))))
    # load_from a checkpoint that is already pruned below the target: nothing left to prune, said loudly
    cfg.load_from = osp.join(phased_run[2], 'pruned_masked.pth')
    runner = phased_run[0]
    runner.save_checkpoint(phased_run[2], 'pruned_masked.pth')
    with pytest.warns(UserWarning, match='will remove nothing'):
        _train(cfg)


@pytest.mark.parametrize('edit,match', [
    (lambda h: h.pruning.update(schedule=dict(type='exponential', steps=2, start=0)), 'schedule.start'),
    (lambda h: h.pruning.update(schedule=dict(type='exponential', steps=5)), 'do not fit'),
    (lambda h: h.warmup.__setitem__('sharpness', dict(adaptive=True)), 'needs a radius policy'),
    (lambda h: h.warmup.update(sharpness=dict(rho=0.1, refresh_interval=0)), 'refresh_interval'),
    (lambda h: h.finetune.update(end=3), 'unknown finetune option'),
    (lambda h: h.update(by_epoch=True), 'epoch-based train loop'),  # _cfg trains with an IterBasedTrainLoop
])
def test_bad_hook_settings_are_refused(edit, match, tiny_voc, tmp_path):
    _runner_error(tiny_voc, tmp_path, lambda cfg: edit(cfg.default_hooks.adasap), ValueError, match)


def test_two_pruning_hooks_are_refused(tiny_voc, tmp_path):
    def edit(cfg):
        cfg.custom_hooks = [dict(type='PruningHook', input_shape=(1, 3, 256, 256))]
    _runner_error(tiny_voc, tmp_path, edit, ValueError, 'already prunes')


def test_dist_train_runs_the_three_phases_on_two_cpu_processes(tiny_voc, tmp_path):
    """The same hook and step under tools/dist_train.sh (2 gloo processes, stock MMDistributedDataParallel); its
    warm-up is also the test of the SAM wrapper's two passes on two processes."""
    import os
    import subprocess
    import sys
    cfg = shrink_adasap_for_smoke_test(load_config(ADASAP), tiny_voc, str(tmp_path / 'work'), (1, 1, 1), samples=2)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=3, by_epoch=False)
    cfg.log_level = 'INFO'
    cfg_path = str(tmp_path / 'adasap_dist.py')
    cfg.dump(cfg_path)
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(29700 + os.getpid() % 1000), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', cfg_path, '2'], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log
    assert 'loss_perturbed' in log and 'eps_norm' in log, 'the SAM wrapper took its two passes under DDP'
    for phase in ("1/3 'warmup'", "2/3 'pruning'", "3/3 'finetune'"):
        assert phase in log, log[-3000:]
    assert log.count('exported the pruned detector') == 1, 'rank 0 exports, once'
    ckpt = torch.load(str(tmp_path / 'work' / 'iter_3.pth'), map_location='cpu', weights_only=False)
    masks, _ = _masks_and_steps(ckpt)
    name = next(n for n, m in masks.items() if not m.all())
    assert ckpt['state_dict'][f'{name}.weight'].shape[0] == int(masks[name].sum()), 'fine-tuned physically'
    assert 'pruned physically after iteration 1' in log
    assert osp.isfile(str(tmp_path / 'work' / 'pruned.pth'))
