"""Physical pruning mid-training (``prune_physically``) against masked training of the same network.

The masked run is the reference: masked channels are exact zeros with zero gradient and zero optimizer state,
so every later update of the kept channels must be the same whether the zeros are there or not. In float64:
in float32 the two convolutions sum in different orders, and a few steps of a random-weight detector amplify
those 1e-7 differences past any useful tolerance.
"""
import copy

import pytest
import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import build_optim_wrapper

from pruning_fixtures import flat_outputs
from mmdet_adasap.pruning.surgery import kept_indices, prune_physically, slice_kept

X = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _loss(model):
    out = flat_outputs(model._forward(X))
    target = torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
    return ((out - target) ** 2).mean()


OPTIMIZERS = {
    'sgd': lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3),
    'adamw': lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2),
}


def _masked_run_to_the_switch(pruner, make_opt):
    """Two dense steps (so that momentum / moments exist and autograd has cached every parameter's shape),
    prune to 50 % FLOPs by masks, one masked step."""
    model = pruner.model.double().train()
    opt = make_opt(model.parameters())
    for _ in range(2):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
    pruner.prune_to(0.5)
    pruner.masks.clear_optimizer_state(opt)
    pruner.masks.register_grad_hooks()
    _masked_step(pruner, opt)
    return opt


def _masked_step(pruner, opt):
    opt.zero_grad()
    loss = _loss(pruner.model)
    loss.backward()
    opt.step()
    pruner.masks.apply()
    return float(loss.detach())


def _plain_step(model, opt):
    opt.zero_grad()
    loss = _loss(model)
    loss.backward()
    opt.step()
    return float(loss.detach())


@pytest.mark.parametrize('opt_name', list(OPTIMIZERS))
def test_training_after_the_switch_equals_masked_training(opt_name, fresh_pruner):
    masked = fresh_pruner('demo')
    opt = _masked_run_to_the_switch(masked, OPTIMIZERS[opt_name])
    physical, opt_p = copy.deepcopy((masked, opt))  # one memo: the copy's optimizer holds the copy's params
    physical.masks._hooks = []  # tensor hooks are not copied; the copy's masks are retired by the switch
    # a graph that outlives the switch (as in a real run, where the last iteration's graph can still be
    # referenced) keeps every parameter's gradient accumulator, and with it the dense shape, alive
    alive = _loss(physical.model.eval())  # eval: BN running stats untouched
    physical.model.train()
    kept = kept_indices(physical.groups, physical.masks.masks)
    prune_physically(physical.groups, physical.masks.masks, opt_p)
    model = physical.model
    assert [id(p) for g in opt_p.param_groups for p in g['params']] == [id(p) for p in model.parameters()]
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in masked.model.parameters())
    for p in model.parameters():  # optimizer state follows the new shapes
        for key, value in opt_p.state[p].items():
            assert value.dim() == 0 or value.shape == p.shape, key
    for _ in range(3):
        ref, got = _masked_step(masked, opt), _plain_step(model, opt_p)
        assert got == pytest.approx(ref, rel=1e-10)
    del alive
    ref_state = masked.model.state_dict()
    for name, value in model.state_dict().items():
        expected = slice_kept(ref_state[name], kept.get(name, {}))
        torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-10, msg=name)


def test_asam_after_the_switch_equals_masked_asam(fresh_pruner):
    cfg = dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-3),
               rho=0.5, adaptive=True)
    masked = fresh_pruner('demo')
    masked.model.double().train()
    masked.prune_to(0.5)
    masked.masks.register_grad_hooks()
    physical = copy.deepcopy(masked)
    physical.masks._hooks = []
    ow_m, ow_p = build_optim_wrapper(masked.model, cfg), build_optim_wrapper(physical.model, cfg)

    def step(ow, model, after=lambda: None):
        ow.bind(model)
        loss = _loss(model)
        ow.sharpness_step(loss, lambda: _loss(model))
        after()
        return float(loss.detach())

    step(ow_m, masked.model, masked.masks.apply)
    step(ow_p, physical.model, physical.masks.apply)
    kept = kept_indices(physical.groups, physical.masks.masks)
    prune_physically(physical.groups, physical.masks.masks, ow_p.optimizer)
    ow_p.reset_plan()
    for _ in range(2):
        ref, got = step(ow_m, masked.model, masked.masks.apply), step(ow_p, physical.model)
        assert got == pytest.approx(ref, rel=1e-10)
    ref_params = dict(masked.model.named_parameters())
    for name, p in physical.model.named_parameters():
        torch.testing.assert_close(p.detach(), slice_kept(ref_params[name].detach(), kept.get(name, {})),
                                   rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize('update_buffers', [False, True])
def test_ema_copy_is_sliced_like_the_model_and_keeps_averaging(update_buffers, fresh_pruner):
    pruner = fresh_pruner('demo')
    pruner.prune_to(0.5)
    ema = ExponentialMovingAverage(pruner.model, momentum=0.5, update_buffers=update_buffers)
    with torch.no_grad():
        for p in pruner.model.parameters():
            p.add_(0.1)
    pruner.masks.apply()  # as training keeps them: masked channels stay zero
    ema.update_parameters(pruner.model)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    kept = kept_indices(pruner.groups, pruner.masks.masks)
    prune_physically(pruner.groups, pruner.masks.masks, averaged=[ema])
    model_shapes = {k: v.shape for k, v in pruner.model.state_dict().items()}
    for name, value in ema.module.state_dict().items():
        assert value.shape == model_shapes[name], name
        torch.testing.assert_close(value, slice_kept(before[name], kept.get(name, {})), rtol=0, atol=0, msg=name)
    averaged = {k: v.clone() for k, v in ema.module.state_dict().items()}
    ema.update_parameters(pruner.model)  # averaging goes on, on the pruned tensors
    source = pruner.model.state_dict()
    for name, p in ema.module.named_parameters():
        torch.testing.assert_close(p.detach(), 0.5 * averaged[name] + 0.5 * source[name], msg=name)
    ema.module.eval()
    assert torch.isfinite(flat_outputs(ema.module._forward(X.float()))).all()


def test_unknown_optimizer_state_is_refused_before_any_change(fresh_pruner):
    pruner = fresh_pruner('demo')
    pruner.prune_to(0.5)
    opt = torch.optim.SGD(pruner.model.parameters(), lr=0.1)
    name, param = next((n, p) for n, p in pruner.model.named_parameters()
                       if n in kept_indices(pruner.groups, pruner.masks.masks))
    opt.state[param]['flat_history'] = torch.zeros(param.numel() + 1)
    before = {k: v.clone() for k, v in pruner.model.state_dict().items()}
    with pytest.raises(ValueError, match=f"'flat_history'.*'{name}'"):
        prune_physically(pruner.groups, pruner.masks.masks, opt)
    after = pruner.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
