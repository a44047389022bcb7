"""The matrix's ``schedule`` and ``phases`` method options (issue 30): a stretched schedule moves the phase ends,
the end of training and the learning-rate curve together; an ablation arm gets the warm-up step of one recipe and
the fine-tune step of another; both reach the run's config, its record and its fingerprint; bad values are
refused naming the phase and the value; the 2x2 main effects equal a brute-force computation. Configs are built,
nothing is trained."""
import math
import os.path as osp
import statistics

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS
from scipy import stats

from conftest import REPO
from mmdet.registry import HOOKS
from mmdet_adasap.apis import load_config
from mmdet_adasap.experiments import RunSpec, load_matrix
from mmdet_adasap.experiments.ablation import ablation_effects, ablation_markdown
from mmdet_adasap.experiments.arms import RECIPES, apply_arm, check_phases, check_schedule, load_arm_config
from mmdet_adasap.experiments.compare import run_config_args, run_spec

ADA = osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py')
SAM = osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py')
L2 = osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py')
CONTROL = osp.join(REPO, 'configs/compare/methods/ssd-r18mini_synthvoc_control_sgd.py')
ABLATION = osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_ablation25.py')
SCHEDULE4X = osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_schedule4x.py')
HOOK = 'default_hooks.adasap.'


@pytest.fixture(scope='module')
def ada():
    return load_config(ADA)


def _lr_curve(cfg, epoch_length: int = 3):
    """The learning rate of every training iteration, from the config's param schedulers as the Runner builds them
    (epoch-based ones converted to iterations) on a dummy SGD optimizer."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for s in cfg.param_scheduler:
        s = dict(s)
        cls = PARAM_SCHEDULERS.get(s.pop('type'))
        if s.pop('convert_to_iter_based', False):
            schedulers.append(cls.build_iter_from_epoch(opt, epoch_length=epoch_length, **s))
        else:
            schedulers.append(cls(opt, **s))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()  # no gradient: nothing moves; keeps torch's step-order check quiet
        for s in schedulers:
            s.step()
    return lrs


def _cosine(t, total, base=0.02, eta_min=1e-4):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / total)) / 2


def test_a_2x_schedule_is_the_1x_one_stretched(ada):
    one, two = ada, apply_arm(load_config(ADA), schedule=2, config=ADA)
    h1, h2 = one.default_hooks.adasap, two.default_hooks.adasap
    assert (h1.warmup.end, h1.pruning.end, one.train_cfg.max_epochs) == (1, 3, 6)
    assert (h2.warmup.end, h2.pruning.end, two.train_cfg.max_epochs) == (2, 6, 12)
    assert two.train_cfg.val_interval == 12 and two.default_hooks.checkpoint.interval == 2
    assert h2.pruning.schedule == h1.pruning.schedule == dict(type='exponential', steps=4)  # the hook spaces them
    assert (two.param_scheduler[0].T_max, two.param_scheduler[0].begin, two.param_scheduler[0].end) == (12, 0, 12)
    lr1, lr2 = _lr_curve(one), _lr_curve(two)
    assert len(lr2) == 2 * len(lr1)
    assert lr2[::2] == pytest.approx(lr1, rel=1e-9, abs=1e-12)  # the same curve at the stretched iterations
    assert lr2 == pytest.approx([_cosine(t, len(lr2)) for t in range(len(lr2))], rel=1e-6)
    for key in ('model', 'optim_wrapper', 'train_dataloader'):  # nothing else moves
        assert two[key] == one[key]


def test_the_issues_4x_schedule_is_2_4_18_under_a_24_epoch_cosine(ada):
    cfg = apply_arm(load_config(ADA), schedule=dict(warmup=2, pruning=4, finetune=18), config=ADA)
    hook = cfg.default_hooks.adasap
    assert (hook.warmup.end, hook.pruning.end, cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (2, 6, 24, 24)
    assert hook.pruning.schedule == dict(type='exponential', steps=4)
    (cos,) = cfg.param_scheduler
    assert (cos.T_max, cos.begin, cos.end) == (24, 0, 24)
    assert cfg.default_hooks.checkpoint.interval == 2  # every phase grew by an even factor: ends 2, 6, 24 kept
    lrs = _lr_curve(cfg)
    assert lrs == pytest.approx([_cosine(t, 24 * 3) for t in range(24 * 3)], rel=1e-6)
    built = HOOKS.build(cfg.default_hooks.adasap.to_dict())
    assert built.ends == (2, 6)


def test_an_iteration_schedule_stretches_its_own_unit_only():
    cfg = Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=600, val_interval=600),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
                         dict(type='CosineAnnealingLR', T_max=550, by_epoch=False, begin=50, end=600),
                         dict(type='MultiStepLR', milestones=[2], by_epoch=True)],  # epochs: left as it is
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False),
                           adasap=dict(type='AdaSAPHook', by_epoch=False, warmup=dict(end=100),
                                       pruning=dict(end=300, schedule=dict(type='exponential', steps=4,
                                                                           interval=20))))))
    apply_arm(cfg, schedule=3, config='iter.py')
    hook = cfg.default_hooks.adasap
    assert (hook.warmup.end, hook.pruning.end, cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == \
        (300, 900, 1800, 1800)
    assert hook.pruning.schedule.interval == 60 and cfg.default_hooks.checkpoint.interval == 100
    lin, cos, steps = cfg.param_scheduler
    assert (lin.begin, lin.end, cos.begin, cos.end, cos.T_max, steps.milestones) == (0, 150, 150, 1800, 1650, [2])


@pytest.mark.parametrize('warmup, finetune', [('adaptive', 'asam'), ('adaptive', 'sgd'), ('sgd', 'asam'),
                                              ('sgd', 'sgd'), ('uniform', 'asam')])
def test_an_ablation_arm_takes_each_phase_from_its_recipe(ada, warmup, finetune):
    own = dict(adaptive=ada.default_hooks.adasap.warmup.sharpness.to_dict(), uniform=RECIPES['warmup']['uniform'],
               asam=ada.default_hooks.adasap.finetune.sharpness.to_dict(), sgd=None)
    for base in (ADA, L2):  # the adasap config's own steps, or (L2 + SGD has none) the recipe table's: the same
        cfg = apply_arm(load_config(base), phases=dict(warmup=warmup, finetune=finetune), config=base)
        hook = cfg.default_hooks.adasap.to_dict()
        assert hook['warmup']['sharpness'] == own[warmup] and hook['finetune']['sharpness'] == own[finetune]
        assert 'sharpness' not in hook['pruning']  # the pruning phase continues the warm-up's step
        assert cfg.optim_wrapper.type == ('OptimWrapper' if warmup == finetune == 'sgd' else 'SAMOptimWrapper')
        built = HOOKS.build(hook)
        assert built.sharpness['pruning'] == built.sharpness['warmup']
        assert (built.sharpness['warmup'] is None) == (warmup == 'sgd')
        assert (built.sharpness['finetune'] is None) == (finetune == 'sgd')


def test_the_recipe_table_is_the_shipped_recipes():
    """adasap config + (sgd, sgd) is the L2 + SGD config; any config + (uniform, asam) is the SAM/ASAM config."""
    def plain(cfg):
        d = cfg.to_dict()
        d.pop('work_dir')
        return d
    for base in (ADA, SAM, L2):
        assert plain(apply_arm(load_config(base), phases=dict(warmup='sgd', finetune='sgd'), config=base)) == \
            plain(load_config(L2))
        assert plain(apply_arm(load_config(base), phases=dict(warmup='uniform', finetune='asam'), config=base)) == \
            plain(load_config(SAM))
        assert plain(apply_arm(load_config(base), phases=dict(warmup='adaptive', finetune='asam'), config=base)) == \
            plain(load_config(ADA))


def test_a_sharpness_knob_overrides_the_arms_recipe_and_one_for_an_sgd_phase_is_refused():
    knobs = {HOOK + 'warmup.sharpness.radius.rho_max': 1.0, HOOK + 'finetune.sharpness.rho': 0.1,
             'optim_wrapper.optimizer.lr': 0.01}
    cfg = load_arm_config(L2, knobs, phases=dict(warmup='adaptive', finetune='asam'))  # L2 + SGD: no radius of its own
    hook = cfg.default_hooks.adasap
    assert hook.warmup.sharpness.radius.rho_max == 1.0 and hook.warmup.sharpness.radius.rho_min == 0.01
    assert hook.finetune.sharpness.to_dict() == dict(rho=0.1, adaptive=True)
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.optim_wrapper.type == 'SAMOptimWrapper'
    with pytest.raises(ValueError, match=r"warmup.sharpness.radius.rho_max=1.0 .* gives that phase 'uniform', whose "
                                         r"step has no radius"):
        load_arm_config(ADA, knobs, phases=dict(warmup='uniform', finetune='asam'))
    with pytest.raises(ValueError, match=r"finetune.sharpness.rho=0.1 .* gives that phase 'sgd'"):
        load_arm_config(ADA, knobs, phases=dict(warmup='adaptive', finetune='sgd'))


@pytest.mark.parametrize('value, message', [
    (1.5, r'multiplier must be a positive int .* got 1.5'),
    (0, r'multiplier must be a positive int .* got 0'),
    (True, r'multiplier must be a positive int .* got True'),
    (dict(warmup=2, pruning=0, finetune=18), r'schedule.pruning \(the length of the pruning phase\) must be a '
                                             r'positive int, got 0'),
    (dict(warmup=2, pruning=4, finetune=1.5), r'schedule.finetune .* got 1.5'),
    (dict(warmup='2', pruning=4, finetune=18), r"schedule.warmup .* got '2'"),
    (dict(warmup=2, pruning=4), r"missing \['finetune'\]"),
    (dict(warmup=2, pruning=4, finetune=18, cooldown=1), r"unknown key\(s\) \['cooldown'\]"),
])
def test_a_bad_schedule_is_refused_naming_the_phase_and_the_value(value, message):
    with pytest.raises(ValueError, match=message):
        check_schedule(value, 'here')


@pytest.mark.parametrize('value, message', [
    (dict(warmup='adaptiv', finetune='asam'), r"unknown warm-up 'adaptiv' in phases.warmup; known warm-ups: "
                                              r"\['adaptive', 'uniform', 'sgd'\]"),
    (dict(warmup='sgd', finetune='sam'), r"unknown fine-tune 'sam' in phases.finetune; known fine-tunes: "
                                         r"\['asam', 'sgd'\]"),
    (dict(warmup='sgd'), r"missing \['finetune'\]"),
])
def test_an_unknown_phase_recipe_is_refused_listing_the_known_ones(value, message):
    with pytest.raises(ValueError, match=message):
        check_phases(value, 'here')


def test_bad_options_in_a_matrix_are_refused_naming_the_method_and_a_control_naming_its_config():
    with pytest.raises(ValueError, match=r"method 'adasap': .*schedule.pruning .* got 0"):
        load_matrix(ABLATION, {'methods.adasap.schedule': dict(warmup=1, pruning=0, finetune=1)})
    with pytest.raises(ValueError, match=r"method 'adasap': the schedule multiplier .* got 1.5"):
        load_matrix(ABLATION, {'methods.adasap.schedule': 1.5})
    with pytest.raises(ValueError, match=r"method 'adasap': unknown fine-tune 'sam'"):
        load_matrix(ABLATION, {'methods.adasap.phases.finetune': 'sam'})
    for arm in (dict(schedule=2), dict(phases=dict(warmup='sgd', finetune='asam'))):
        with pytest.raises(ValueError, match=r'control_sgd.py: this config has no AdaSAPHook'):
            load_arm_config(CONTROL, {}, **arm)


def test_ablation_matrix_is_the_2x2_design_with_the_uniform_row():
    m = load_matrix(ABLATION)
    assert m.ratios == [0.25] and m.seeds['test'] == [11, 12, 13, 14, 15] and m.evaluation['severities'] == [3]
    assert m.dense_checkpoint == 'docs/results/demo/dense_start.pth' and m.references == dict(flops='adasap')
    assert {k: (v.phases['warmup'], v.phases['finetune']) for k, v in m.methods.items()} == dict(
        adasap=('adaptive', 'asam'), adaptive_sgd=('adaptive', 'sgd'), sgd_asam=('sgd', 'asam'),
        l2prune_sgd=('sgd', 'sgd'), sam_asam=('uniform', 'asam'))
    assert all(v.end_of_pruning == [0.25] and v.kind == 'flops' for v in m.methods.values())
    with open(ABLATION) as f:
        marked = [line for line in f if '# CHOSEN BY THE SEARCH:' in line and not line.startswith('#')]
    assert [line.split('=')[0].strip() for line in marked] == ['_lr', '_rho_max', '_ft_rho', '_sam_warm_rho',
                                                                '_sam_ft_rho']
    run = RunSpec('adasap', 0.25, 11, 'test')
    cfg = m.method_config('adasap', m.train_options(run, m.dense_checkpoint))
    chosen = {'default_hooks.adasap.finetune.sharpness.rho': 0.1}  # the 0.25 search's radii: rho_max 2.0 as shipped
    shipped = load_config(ADA, {**m.train_options(run, m.dense_checkpoint), **chosen})
    assert cfg.to_dict() == shipped.to_dict()  # the adaptive + ASAM arm is AdaSAP with the search's radii
    spec = run_spec(m, run, m.train_options(run, m.dense_checkpoint), 'sha')
    assert spec['phases'] == dict(warmup='adaptive', finetune='asam') and 'schedule' not in spec


def test_schedule4x_matrix_runs_24_epochs_and_records_it():
    m = load_matrix(SCHEDULE4X)
    compare = load_matrix(osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_compare.py'))
    assert sorted(m.methods) == ['adasap', 'adasap_every5', 'l2prune_sgd', 'sam_asam'] and m.ratios == [0.25]
    assert m.seeds['test'] == [11, 12, 13, 14, 15] and m.references == dict(flops='adasap')
    assert m.methods['adasap_every5'].cfg_options['optim_wrapper.sam_interval'] == 5
    seen = []
    for name, method in m.methods.items():
        assert method.schedule == dict(warmup=2, pruning=4, finetune=18)
        run = RunSpec(name, 0.25, 11, 'test')
        options = m.train_options(run, m.dense_checkpoint)
        load, edit = run_config_args(m, run, options, lambda cfg, run: seen.append(cfg.train_cfg.max_epochs) or cfg)
        cfg = edit(load_config(method.config, load))  # the arm's edit, then the caller's transform
        hook = cfg.default_hooks.adasap
        assert (hook.warmup.end, hook.pruning.end, cfg.param_scheduler[0].T_max) == (2, 6, 24)
        spec = run_spec(m, run, options, 'sha')
        plain = run_spec(compare, run, compare.train_options(run, m.dense_checkpoint), 'sha')
        assert spec['schedule'] == dict(warmup=2, pruning=4, finetune=18) and 'schedule' not in plain
        assert spec['config_sha256'] != plain['config_sha256']  # the fingerprint covers the schedule
        chosen = {k: v for k, v in spec['method_options'].items() if k not in plain['method_options']}
        assert chosen == ({} if name == 'l2prune_sgd' else  # the 0.25 search's radii
                          {'default_hooks.adasap.finetune.sharpness.rho': 0.1} if name.startswith('adasap') else
                          {'default_hooks.adasap.finetune.sharpness.rho': 0.1,
                           'default_hooks.adasap.warmup.sharpness.rho': 0.05})
        assert {k: v for k, v in spec.items() if k not in ('schedule', 'config_sha256', 'method_options')} == \
            {k: v for k, v in plain.items() if k not in ('config_sha256', 'method_options')}
    assert seen == [24] * 4


def _records():
    """Made-up records: the four 2x2 arms at 0.25 (seed 5 missing from one arm), the uniform row, an unrelated
    method and a second schedule with only two arms (no effects)."""
    arms = {('adaptive', 'asam'): 'a_a', ('adaptive', 'sgd'): 'a_s', ('sgd', 'asam'): 's_a', ('sgd', 'sgd'): 's_s'}
    base = dict(a_a=(31.0, 50.0), a_s=(30.2, 49.1), s_a=(31.9, 51.3), s_s=(32.4, 51.0))
    recs = []
    for seed, (d_mpc, d_map) in zip((1, 2, 3, 4, 5), ((0.3, -0.4), (-0.6, 0.2), (0.9, 1.1), (0.1, -1.3), (0, 0))):
        for (w, f), name in arms.items():
            if seed == 5 and name == 's_s':
                continue
            bump = 0.37 * seed if name == 'a_s' else 0.11 * seed * seed if name == 's_a' else 0
            recs.append(dict(method=name, ratio=0.25, seed=seed, phases=dict(warmup=w, finetune=f),
                             mpc=base[name][0] + d_mpc + bump, clean_map=base[name][1] + d_map - bump))
        recs.append(dict(method='sam', ratio=0.25, seed=seed, phases=dict(warmup='uniform', finetune='asam'),
                         mpc=40.0, clean_map=50.0))
        recs.append(dict(method='plain', ratio=0.25, seed=seed, mpc=1.0, clean_map=2.0))
        recs.append(dict(method='a_a4x', ratio=0.25, seed=seed, schedule=4, phases=dict(warmup='adaptive',
                                                                                        finetune='asam'),
                         mpc=1.0, clean_map=2.0))
    return recs


def test_ablation_effects_equal_a_brute_force_computation():
    recs = _records()
    effects = ablation_effects(recs)
    assert len(effects) == 6 and {e['schedule'] for e in effects} == {1}
    by = {(r['method'], r['seed']): r for r in recs}
    t975 = stats.t.ppf(0.975, 3)
    for e in effects:
        assert e['seeds'] == [1, 2, 3, 4] and e['dropped_seeds'] == [5] and e['n'] == 4
        diffs = []
        for s in (1, 2, 3, 4):
            aa, as_, sa, ss = (by[m, s][e['metric']] for m in ('a_a', 'a_s', 's_a', 's_s'))
            diffs.append(dict(warmup=(aa + as_ - sa - ss) / 2, finetune=(aa + sa - as_ - ss) / 2,
                              interaction=aa - sa - as_ + ss)[e['effect']])
        mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
        half = t975 * sd / math.sqrt(4)
        assert (e['mean'], e['std'], e['low'], e['high']) == pytest.approx((mean, sd, mean - half, mean + half))
        assert (e['low'], e['high']) == pytest.approx(stats.t.interval(0.95, 3, loc=mean, scale=sd / 2))
        assert e['excludes_zero'] == (mean - half > 0 or mean + half < 0)
    lines = ablation_markdown(effects, dict(a_a='AdaSAP'))
    assert '| effect | seeds | mPC | clean mAP |' in lines
    assert sum(line.startswith('| warm-up: adaptive - SGD | 4 |') for line in lines) == 1
    assert any('adaptive+asam = AdaSAP' in line for line in lines) and any('[5] left out' in line for line in lines)
    with pytest.raises(ValueError, match=r"two runs of the arm warm-up 'sgd' \+ fine-tune 'sgd' .* seed 1"):
        ablation_effects(recs + [dict(by['s_s', 1], method='s_s_again')])
    assert ablation_effects([r for r in recs if r['method'] != 's_a']) == []
