"""SAMOptimWrapper against an independent float64 computation of SAM / ASAM / per-neuron radii."""
import copy

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from torch.func import functional_call

from mmdet_adasap.engine import AdaptiveRadius, UniformRadius, norm_stat_buffers
from test_engine.tiny_models import TinyNet, tiny_batch, tiny_groups

LR, MOMENTUM, WD = 0.1, 0.9, 1e-3
SGD = dict(type='SGD', lr=LR, momentum=MOMENTUM, weight_decay=WD)


def loss_and_grads(model, params, batch):
    """Loss and gradient of a float64 copy of ``model`` at ``params`` (name -> tensor), independently of the
    wrapper."""
    ref = copy.deepcopy(model).double().train()
    p = {n: v.detach().double().clone().requires_grad_(True) for n, v in params.items()}
    loss = functional_call(ref, p, (batch['inputs'].double(), batch['labels']))['loss_cls']
    grads = torch.autograd.grad(loss, list(p.values()))
    return loss.detach(), dict(zip(p, grads))


def reference_eps(model, w, g, rho, adaptive, eta=0.01, groups=(), radii=(), normalize='global'):
    """eps element by element: owner = covering slice with the lowest dim (then earliest group), dead if any
    covering neuron is masked; norms over boolean masks (no index_add, no foreach)."""
    names = list(w)
    sizes = [w[n].numel() for n in names]
    offsets = dict(zip(names, torch.tensor([0] + sizes[:-1]).cumsum(0).tolist()))
    W = torch.cat([w[n].double().flatten() for n in names])
    G = torch.cat([g[n].double().flatten() for n in names])
    weight_like = torch.cat([torch.full((w[n].numel(),), not n.endswith('bias')) for n in names])
    T = torch.where(weight_like, W.abs() + eta, torch.ones_like(W)) if adaptive else torch.ones_like(W)
    U = T * G
    name_of = {id(p): n for n, p in model.named_parameters()}
    cands = [[] for _ in range(W.numel())]
    for gi, grp in enumerate(groups):
        for s in grp.slices:
            n = name_of[id(s.param)]
            ids = torch.arange(w[n].numel()).view(w[n].shape) + offsets[n]
            for c in range(grp.num_channels):
                for e in ids.index_select(s.dim, s.index[c:c + 1]).flatten().tolist():
                    cands[e].append((s.dim, gi, c))
    unit, rho_e = [], []
    for cand in cands:
        if not cand:
            unit.append('rest'), rho_e.append(rho)
        elif any(not groups[gi].kept()[c] for _, gi, c in cand):
            unit.append('dead'), rho_e.append(0.)
        else:
            _, gi, c = min(cand)
            unit.append((gi, c)), rho_e.append(float(radii[gi][c]))
    rho_e = torch.tensor(rho_e, dtype=torch.float64)
    alive = torch.tensor([u != 'dead' for u in unit])
    if normalize == 'global' or not groups:
        eps = rho_e * T * U / U[alive].norm()
    else:
        eps = torch.zeros_like(W)
        for key in set(unit) - {'dead'}:
            sel = torch.tensor([u == key for u in unit])
            eps[sel] = rho_e[sel] * T[sel] * U[sel] / U[sel].norm()
    return {n: eps[offsets[n]:offsets[n] + w[n].numel()].view(w[n].shape) for n in names}


def run_one_step(wrapper_cfg, policy=None, seed=0, **model_kw):
    torch.manual_seed(seed)
    model = TinyNet(**model_kw)
    batch = tiny_batch(seed)
    ow = build_optim_wrapper(model, wrapper_cfg)
    groups = tiny_groups(model)
    if policy is not None:
        policy.update(groups)
        ow.set_radius_policy(policy)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.record = True
    model.train_step(batch, ow)
    return model, ow, batch, groups, w0


POLICIES = {
    'none': lambda: None,
    'uniform': lambda: UniformRadius(rho=0.3),
    'adaptive': lambda: AdaptiveRadius(rho_min=0.05, rho_max=1.0),
    'adaptive_per_group': lambda: AdaptiveRadius(rho_min=0.05, rho_max=1.0, scope='per_group'),
}


@pytest.mark.parametrize('adaptive', [False, True], ids=['SAM', 'ASAM'])
@pytest.mark.parametrize('policy_name', list(POLICIES))
@pytest.mark.parametrize('normalize', ['global', 'neuron'])
def test_step_equals_closed_form(adaptive, policy_name, normalize):
    rho = 0.2
    policy = POLICIES[policy_name]()
    cfg = dict(type='SAMOptimWrapper', optimizer=SGD, rho=rho, adaptive=adaptive, normalize=normalize)
    model, ow, batch, groups, w0 = run_one_step(cfg, policy)

    _, g1 = loss_and_grads(model, w0, batch)
    radii = [] if policy is None else policy.channel_radii
    eps_ref = reference_eps(model, w0, g1, rho, adaptive, groups=groups if policy else (), radii=radii,
                            normalize=normalize)
    # the perturbation the second forward actually saw
    assert model.forward_calls == 2
    for n in w0:
        seen = model.seen_weights[1][n].double() - model.seen_weights[0][n].double()
        torch.testing.assert_close(seen, eps_ref[n], rtol=1e-4, atol=2e-7, msg=f'eps of {n}')
    if policy is not None:  # masked neuron 2 of conv1: its filter and conv2's input column stay put
        assert eps_ref['conv1.weight'][2].abs().max() == 0 and eps_ref['conv2.weight'][:, 2].abs().max() == 0
        assert model.seen_weights[1]['conv1.weight'][2].equal(w0['conv1.weight'][2])
    # final update: torch SGD (first step: buf = g + wd w) with the gradient at w + eps, from w (restored)
    loss2, g2 = loss_and_grads(model, {n: w0[n].double() + eps_ref[n] for n in w0}, batch)
    for n, p in model.named_parameters():
        expected = w0[n].double() - LR * (g2[n] + WD * w0[n].double())
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-4, atol=1e-6, msg=f'update of {n}')
    assert ow.message_hub.get_scalar('train/loss_perturbed').current() == pytest.approx(float(loss2), rel=1e-4)
    eps_norm = torch.cat([e.flatten() for e in eps_ref.values()]).norm()
    assert ow.message_hub.get_scalar('train/eps_norm').current() == pytest.approx(float(eps_norm), rel=1e-4)


def test_weights_restored_exactly_and_count_once():
    cfg = dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.), rho=0.5, adaptive=True)
    model, ow, batch, groups, w0 = run_one_step(cfg, AdaptiveRadius())
    assert model.seen_weights[1]['conv2.weight'].ne(w0['conv2.weight']).any()  # it was perturbed
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), w0[n]), n
    assert ow._inner_count == 1 and ow.sam_steps == 1


def test_perturbation_excludes_bias_norm_and_regex():
    cfg = dict(type='SAMOptimWrapper', optimizer=SGD, rho=0.2, perturb_bias=False, perturb_norm=False,
               exclude=r'^fc\.')
    model, *_ = run_one_step(cfg)
    moved = {n for n in model.seen_weights[0]
             if not torch.equal(model.seen_weights[0][n], model.seen_weights[1][n])}
    assert moved == {'conv1.weight', 'conv2.weight'}


def test_sam_interval_takes_plain_steps_between():
    torch.manual_seed(0)
    model = TinyNet()
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=SGD, sam_interval=3))
    for i in range(6):
        model.train_step(tiny_batch(i), ow)
    assert (ow._inner_count, ow.sam_steps, model.forward_calls) == (6, 2, 8)


def test_clipping_only_before_final_step():
    rho, max_norm = 0.2, 1e-3
    cfg = dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=LR), rho=rho, clip_grad=dict(max_norm=max_norm))
    model, ow, batch, _, w0 = run_one_step(cfg)
    _, g1 = loss_and_grads(model, w0, batch)
    eps_ref = reference_eps(model, w0, g1, rho, adaptive=False)
    for n in w0:  # the perturbation used the unclipped gradient (its norm is far above max_norm)
        torch.testing.assert_close(model.seen_weights[1][n].double() - w0[n].double(), eps_ref[n],
                                   rtol=1e-4, atol=2e-7)
    _, g2 = loss_and_grads(model, {n: w0[n].double() + eps_ref[n] for n in w0}, batch)
    g2_norm = torch.cat([v.flatten() for v in g2.values()]).norm()
    assert g2_norm > 10 * max_norm
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach().double(), w0[n].double() - LR * g2[n] * max_norm / g2_norm,
                                   rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize('norm', ['bn', 'syncbn'])
def test_bn_running_stats_come_from_the_first_pass_only(norm):
    torch.manual_seed(0)
    model = TinyNet(norm=norm)
    first_pass_only = copy.deepcopy(model)
    batch = tiny_batch(0)
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=SGD, rho=1.0, adaptive=True))
    model.train_step(batch, ow)
    first_pass_only(**batch)
    both_passes = copy.deepcopy(first_pass_only)
    both_passes(**batch)  # what the stats would be if the perturbed pass were allowed to update them
    stats = dict(model.named_buffers())
    for name, b in first_pass_only.named_buffers():
        assert torch.equal(stats[name], b), name
    assert not torch.equal(stats['bn1.num_batches_tracked'], dict(both_passes.named_buffers())['bn1.num_batches_tracked'])


@pytest.fixture
def single_process_group(tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_mmcv_syncbn_running_stats_are_saved(single_process_group):
    """mmcv's MMSyncBN is no torch _BatchNorm (its forward needs CUDA, so only discovery is checked here)."""
    from mmcv.ops import SyncBatchNorm as MMSyncBN
    model = nn.Sequential(nn.Conv2d(3, 4, 1), MMSyncBN(4), nn.BatchNorm1d(2))
    found = {id(b) for b in norm_stat_buffers(model)}
    expected = {id(b) for m in (model[1], model[2])
                for b in (m.running_mean, m.running_var, m.num_batches_tracked)}
    assert found == expected


def test_fork_rng_replays_the_same_random_draws():
    def step(fork):
        torch.manual_seed(0)
        model = TinyNet()
        model.use_dropout = True
        ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=SGD, rho=0., fork_rng=fork))
        torch.manual_seed(7)
        log_vars = model.train_step(tiny_batch(0), ow)
        return float(log_vars['loss'].detach()), ow.message_hub.get_scalar('train/loss_perturbed').current(), \
            torch.get_rng_state()

    loss, perturbed, rng_after = step(fork=True)
    assert perturbed == pytest.approx(loss, rel=1e-6)  # rho = 0 and the same dropout masks
    loss_nf, perturbed_nf, _ = step(fork=False)
    assert perturbed_nf != pytest.approx(loss_nf, rel=1e-3)
    torch.manual_seed(0)
    plain = TinyNet()
    plain.use_dropout = True
    plain_ow = build_optim_wrapper(plain, dict(type='OptimWrapper', optimizer=SGD))
    torch.manual_seed(7)
    plain.train_step(tiny_batch(0), plain_ow)
    assert torch.equal(rng_after, torch.get_rng_state())  # the RNG stream advanced by one pass only


class PoisonFirstPass(TinyNet):
    """Non-finite loss on the first pass of each sharpness step (odd forward calls)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        if self.forward_calls % 2 == 1:
            out['loss_cls'] = out['loss_cls'] * float('nan')
        return out


def test_nonfinite_first_pass_skips_perturbation():
    torch.manual_seed(0)
    model = PoisonFirstPass()
    batch = tiny_batch(0)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=LR), rho=0.5))
    model.record = True
    model.train_step(batch, ow)
    assert ow.nonfinite_skips == 1
    _, g = loss_and_grads(TinyNet(), w0, batch)  # the second pass ran at w: a plain SGD step
    for n, p in model.named_parameters():
        assert torch.equal(model.seen_weights[1][n], w0[n])
        torch.testing.assert_close(p.detach().double(), w0[n].double() - LR * g[n], rtol=1e-4, atol=1e-7)


def test_update_params_without_optim_context_is_a_clear_error():
    model = TinyNet()
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=SGD))
    loss = model(**tiny_batch(0))['loss_cls']
    with pytest.raises(RuntimeError, match='optim_context'):
        ow.update_params(loss)


def test_sharpness_step_with_closure_for_custom_loops():
    torch.manual_seed(0)
    model, batch = TinyNet(), tiny_batch(0)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=LR), rho=0.2))
    ow.bind(model)
    ow.sharpness_step(model(**batch)['loss_cls'], lambda: model(**batch)['loss_cls'])
    _, g1 = loss_and_grads(model, w0, batch)
    eps = reference_eps(model, w0, g1, 0.2, adaptive=False)
    _, g2 = loss_and_grads(model, {n: w0[n].double() + eps[n] for n in w0}, batch)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach().double(), w0[n].double() - LR * g2[n], rtol=1e-4, atol=1e-7)


def test_checkpoint_is_the_stock_optimizer_state():
    torch.manual_seed(0)
    model = TinyNet()
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=SGD, rho=0.1))
    model.train_step(tiny_batch(0), ow)
    state = ow.state_dict()
    assert set(state) == {'state', 'param_groups'} and len(state['state']) == len(list(model.parameters()))
    other = build_optim_wrapper(TinyNet(), dict(type='SAMOptimWrapper', optimizer=SGD, rho=0.1))
    other.load_state_dict(state)
    assert torch.equal(other.optimizer.state_dict()['state'][0]['momentum_buffer'],
                       state['state'][0]['momentum_buffer'])


@pytest.mark.parametrize('bad, message', [
    (dict(rho=-0.1), 'rho'),
    (dict(eta=0), 'eta'),
    (dict(normalize='layer'), 'layer'),
    (dict(adaptive='asam'), 'asam'),
    (dict(sam_interval=0), 'sam_interval'),
    (dict(sam_interval=2.5), 'sam_interval'),
    (dict(accumulative_counts=2), 'accumulative_counts'),
    (dict(exclude='('), 'exclude'),
    (dict(radius_policy=dict(type='AdaptiveRadius', rho_min=2.0, rho_max=1.0)), 'rho_min'),
    (dict(radius_policy=dict(type='AdaptiveRadius', rho_min=-1.0)), 'rho_min'),
    (dict(radius_policy=dict(type='AdaptiveRadius', scope='layer')), 'layer'),
    (dict(radius_policy=dict(type='UniformRadius', rho=-2)), 'rho'),
])
def test_bad_config_fails_at_build_time(bad, message):
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(TinyNet(), dict(type='SAMOptimWrapper', optimizer=SGD, **bad))


@pytest.mark.parametrize('normalize', ['global', 'neuron'])
def test_radius_refresh_updates_the_plan_in_place_and_equals_a_fresh_build(normalize):
    """New radii (same groups and masks) refresh the plan's radius vector without a rebuild; the eps of the
    refreshed plan equals that of a plan built from scratch with the new radii; a mask change rebuilds."""
    cfg = dict(type='SAMOptimWrapper', optimizer=SGD, rho=0.2, adaptive=True, normalize=normalize)
    policy = AdaptiveRadius(rho_min=0.05, rho_max=1.0)
    model, ow, batch, groups, w0 = run_one_step(cfg, policy)
    assert ow.plan_builds == 1
    grads = [torch.randn_like(p) for p in ow._plan.params]
    for g in groups:  # new scores, same masks: a refresh, not a rebuild
        g.importance = torch.rand(g.num_channels)
    policy.update(groups)
    ow.bind(model)
    assert ow.plan_builds == 1
    refreshed, _ = ow._plan.compute(grads)
    fresh_ow = build_optim_wrapper(model, cfg)
    fresh_ow.set_radius_policy(policy)
    fresh_ow.bind(model)
    expected, _ = fresh_ow._plan.compute(grads)
    for a, b, name in zip(refreshed, expected, ow._plan.names):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f'eps of {name}')
    before = [e.clone() for e in refreshed]
    groups[0].mask = groups[0].kept().clone()
    groups[0].mask[0] = False  # a pruning step: the structure changes
    policy.update(groups)
    ow.bind(model)
    assert ow.plan_builds == 2
    after, _ = ow._plan.compute(grads)
    assert not all(torch.equal(a, b) for a, b in zip(after, before))
