import pytest
import torch
import torch.nn as nn
from mmdet.registry import TASK_UTILS

from mmdet_adasap.pruning import BaseImportance, build_importance


def _demo_groups(fresh_pruner):
    pruner = fresh_pruner('demo')
    return pruner.model, pruner.groups


def test_l2_matches_an_explicit_per_module_computation(fresh_pruner):
    model, groups = _demo_groups(fresh_pruner)
    scores = build_importance(dict(type='l2', normalize=None))(groups)
    # residual group rooted at layer2's downsample: producers are 3 convs (rows) and 3 BNs (gamma, beta)
    g = groups.by_name['backbone.layer2.0.downsample.0']
    expected = torch.zeros(g.size, dtype=torch.float64)
    for name, role, index in g.members:
        m = model.get_submodule(name)
        if role in ('out', 'bn'):
            for p in m.parameters(recurse=False):
                for j in range(g.size):
                    expected[j] += p[index[j]].double().pow(2).sum()
    assert torch.allclose(scores[g.name].double(), expected.sqrt(), rtol=1e-5)
    with_consumers = build_importance(dict(type='l2', include_consumers=True, normalize=None))(groups)
    assert (with_consumers[g.name] > scores[g.name]).all()


def test_taylor_accumulates_squared_first_order_terms(fresh_pruner):
    model, groups = _demo_groups(fresh_pruner)
    imp = build_importance(dict(type='taylor', normalize=None))
    with pytest.raises(RuntimeError, match='no gradients'):
        imp(groups)
    g = groups.by_name['backbone.layer1.0.conv1']
    conv1, bn1, conv2 = model.backbone.layer1[0].conv1, model.backbone.layer1[0].bn1, model.backbone.layer1[0].conv2
    model.train()
    expected = torch.zeros(g.size, dtype=torch.float64)
    for seed in (1, 2):
        model.zero_grad()
        x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(seed))
        loss = sum(o.pow(2).mean() for o in model._forward(x)[0])
        loss.backward()
        imp.accumulate(groups)
        for j in range(g.size):  # independent: sum over the neuron's parameters of w * dL/dw, squared
            t = (conv1.weight[j] * conv1.weight.grad[j]).sum() + (bn1.weight[j] * bn1.weight.grad[j]) \
                + (bn1.bias[j] * bn1.bias.grad[j]) + (conv2.weight[:, j] * conv2.weight.grad[:, j]).sum()
            expected[j] += t.double() ** 2
    scores = imp(groups)
    assert torch.allclose(scores[g.name].double(), expected / 2, rtol=1e-4, atol=1e-12)
    state = imp.state_dict()
    other = build_importance(dict(type='taylor', normalize=None))
    other.load_state_dict(state)
    assert torch.equal(other(groups)[g.name], scores[g.name])


def test_bn_scale_sums_abs_gamma_and_refuses_groups_without_bn(fresh_pruner):
    model, groups = _demo_groups(fresh_pruner)
    g = groups.by_name['backbone.layer1.0.conv1']
    assert torch.allclose(build_importance(dict(type='bn_scale', normalize=None))(groups)[g.name],
                          model.backbone.layer1[0].bn1.weight.detach().abs())
    with pytest.raises(ValueError, match="backbone.features"):
        build_importance('bn_scale')(fresh_pruner('ssd300').groups)


def test_unknown_importance_is_named():
    with pytest.raises(ValueError, match="'l3'"):
        build_importance('l3')


def test_users_register_their_own_criterion(fresh_pruner):
    @TASK_UTILS.register_module(force=True)
    class ChannelIndexImportance(BaseImportance):  # noqa: E306
        def group_importance(self, group):
            return torch.arange(group.size, dtype=torch.float32)

    model, groups = _demo_groups(fresh_pruner)
    scores = build_importance(dict(type='ChannelIndexImportance', normalize=None))(groups)
    assert all(torch.equal(scores[g.name], torch.arange(g.size, dtype=torch.float32)) for g in groups)


@pytest.mark.parametrize('norm,stat', [('mean', lambda s: s.abs().mean()), ('max', lambda s: s.abs().max()),
                                       ('l2', lambda s: s.norm())])
def test_normalisation_divides_by_the_statistic_of_the_kept_channels(fresh_pruner, norm, stat):
    """The one place scores are made comparable across groups (global ranking, knapsack, adaptive radius)."""
    _, groups = _demo_groups(fresh_pruner)
    raw = build_importance(dict(type='l2', normalize=None))(groups)
    masks = {g.name: torch.arange(g.size) % 3 != 0 for g in groups}
    scores = build_importance(dict(type='l2', normalize=norm))(groups, masks)
    for g in groups:
        assert torch.allclose(scores[g.name], raw[g.name] / stat(raw[g.name][masks[g.name]]))
    with pytest.raises(ValueError, match="'median'"):
        build_importance(dict(type='l2', normalize='median'))


def test_scores_stay_on_the_parameters_device(fresh_pruner):
    """The radius refresh computes importance every iteration: no host round trip. The meta device stands in for
    a GPU here (a ``.cpu()`` anywhere on the path would raise: meta tensors have no data to copy)."""
    model, groups = _demo_groups(fresh_pruner)
    for p in model.parameters():  # the same Parameter objects (the groups' slices) now hold meta tensors
        torch.utils.swap_tensors(p, nn.Parameter(p.detach().to('meta'), requires_grad=p.requires_grad))
    for name in ('l2', 'bn_scale'):
        scores = build_importance(dict(type=name, normalize=None)).scores(groups)
        assert {s.device.type for s in scores.values()} == {'meta'}, name
        assert all(s.shape == (g.size,) for g, s in zip(groups, scores.values()))
    taylor = build_importance(dict(type='taylor', normalize=None))
    grads = {s.param: torch.empty_like(s.param) for g in groups for s in g.slices}
    taylor.accumulate(groups, grads=grads)
    taylor.accumulate(groups, grads=grads)
    assert {s.device.type for s in taylor.scores(groups).values()} == {'meta'}


def test_a_knapsack_over_normalised_scores_warns_and_names_halps_criterion(detector):
    import logging
    from mmengine.logging import MMLogger
    from mmdet_adasap.pruning import ChannelPruner
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        for importance in ('l2', dict(type='taylor', normalize=None)):
            model, shape = detector('demo')
            ChannelPruner(model, shape, ranking='knapsack', importance=importance)
    finally:
        logger.removeHandler(handler)
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING and 'knapsack' in r.getMessage()]
    assert len(warned) == 1, warned  # the normalised L2, not the raw Taylor
    assert "normalize='mean'" in warned[0] and "importance=dict(type='taylor', normalize=None)" in warned[0]
