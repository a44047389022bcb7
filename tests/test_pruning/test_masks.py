import pytest
import torch

from pruning_fixtures import flat_outputs


def _masked_entries(pruner):
    """(param, boolean tensor of masked entries) computed independently from members and masks."""
    out = []
    for g in pruner.groups:
        drop = ~pruner.masks.masks[g.name]
        if not drop.any():
            continue
        for s in g.slices:
            sel = torch.zeros(s.param.shape[s.dim], dtype=torch.bool)
            sel[s.index[drop]] = True
            shape = [1] * s.param.dim()
            shape[s.dim] = -1
            out.append((s.param, sel.view(shape).expand_as(s.param)))
    return out


@pytest.mark.parametrize('arch', ['demo', 'ssd300', 'ssdlite', 'faster_rcnn'])
def test_masked_channels_stay_zero_through_sgd_momentum_steps(arch, fresh_pruner):
    pruner = fresh_pruner(arch)
    model, shape = pruner.model, pruner.groups.input_shape
    pruner.masks.register_grad_hooks()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    train_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())
    x = torch.randn((2 if train_bn else 1,) + tuple(shape[1:]))  # BN in train mode needs >1 value per channel

    def step():
        opt.zero_grad()
        flat_outputs(pruner.groups.forward_fn(model, x)).pow(2).mean().backward()
        opt.step()

    step()  # momentum buffers now hold dense gradients
    pruner.prune_one_shot()
    pruner.masks.clear_optimizer_state(opt)
    entries = _masked_entries(pruner)
    assert sum(int(sel.sum()) for _, sel in entries) > 0
    step()
    for p, sel in entries:
        assert p.detach()[sel].abs().max() == 0, 'masked weights moved'
        assert opt.state[p]['momentum_buffer'][sel].abs().max() == 0, 'masked momentum not cleared'
    kept = [p.detach()[~sel] for p, sel in entries]
    assert any(k.abs().sum() > 0 for k in kept)


def test_bn_statistics_of_masked_channels_are_neutralised(fresh_pruner):
    pruner = fresh_pruner('demo')
    model = pruner.model
    pruner.prune_one_shot()
    g = pruner.groups.by_name['backbone.layer1.0.conv1']
    drop = ~pruner.masks.masks[g.name]
    assert drop.any()
    bn = model.backbone.layer1[0].bn1
    assert (bn.running_mean[drop] == 0).all() and (bn.running_var[drop] == 1).all()
    assert (bn.weight[drop] == 0).all() and (bn.bias[drop] == 0).all()


def test_mask_state_round_trips_and_rejects_foreign_masks(fresh_pruner):
    pruner = fresh_pruner('demo')
    pruner.prune_one_shot()
    state = pruner.state_dict()
    other = fresh_pruner('demo')
    other.load_state_dict(state)
    assert other.masks.num_kept() == pruner.masks.num_kept()
    assert other.cost_ratio() == pytest.approx(pruner.cost_ratio())
    bad = dict(state, masks={k: v for k, v in list(state['masks'].items())[1:]})
    with pytest.raises(KeyError, match=repr(next(iter(state['masks'])))):
        other.load_state_dict(bad)
    name = next(iter(state['masks']))
    with pytest.raises(ValueError, match=name):
        other.masks.set({name: torch.ones(3, dtype=torch.bool)})
