"""Radius policies against the AdaSAP rule written out by hand."""
import pytest
import torch
from mmdet.registry import TASK_UTILS

from mmdet_adasap.engine import AdaptiveRadius, UniformRadius
from mmdet_adasap.structures.neuron_groups import NeuronGroup


def group(name, scores, kept=None):
    g = NeuronGroup(name, [], len(scores), importance=torch.tensor(scores, dtype=torch.float32))
    if kept is not None:
        g.mask = torch.tensor(kept)
    return g


def test_adaptive_global_rule_and_masks():
    a = group('a', [1.0, 3.0, 5.0], kept=[True, True, False])
    b = group('b', [2.0, 9.0])  # 9 would be s_max if masked channels counted: a's 5.0 must not matter
    p = AdaptiveRadius(rho_min=0.1, rho_max=1.1)
    p.update([a, b])
    lo, hi = 1.0, 9.0
    rule = lambda s: 1.1 - (s - lo) / (hi - lo) * (1.1 - 0.1)  # noqa: E731
    torch.testing.assert_close(p.channel_radii[0], torch.tensor([rule(1.0), rule(3.0), 0.0]))
    torch.testing.assert_close(p.channel_radii[1], torch.tensor([rule(2.0), rule(9.0)]))
    assert p.channel_radii[1][1] == pytest.approx(0.1) and p.channel_radii[0][0] == pytest.approx(1.1)
    assert p.version == 1


def test_masked_extremes_are_excluded_from_min_max():
    g = group('g', [0.0, 2.0, 4.0, 100.0], kept=[False, True, True, False])
    p = AdaptiveRadius(rho_min=0.0, rho_max=1.0)
    p.update([g])
    torch.testing.assert_close(p.channel_radii[0], torch.tensor([0.0, 1.0, 0.0, 0.0]))


def test_per_group_scope_and_equal_scores():
    a, b = group('a', [1.0, 2.0]), group('b', [7.0, 7.0, 7.0])
    p = AdaptiveRadius(rho_min=0.5, rho_max=2.0, scope='per_group')
    p.update([a, b])
    torch.testing.assert_close(p.channel_radii[0], torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(p.channel_radii[1], torch.full((3,), 2.0))  # s_max == s_min: all rho_max


def test_uniform_and_update_reads_current_scores():
    g = group('g', [1.0, 2.0, 3.0], kept=[True, False, True])
    u = UniformRadius(rho=0.7)
    u.update([g])
    torch.testing.assert_close(u.channel_radii[0], torch.tensor([0.7, 0.0, 0.7]))
    p = AdaptiveRadius(rho_min=0.0, rho_max=1.0)
    p.update([g])
    g.importance = torch.tensor([3.0, 2.0, 1.0])
    p.update()  # the same groups, new scores
    torch.testing.assert_close(p.channel_radii[0], torch.tensor([0.0, 0.0, 1.0]))
    assert p.version == 2


def test_registered_in_task_utils():
    p = TASK_UTILS.build(dict(type='AdaptiveRadius', rho_min=0.01, rho_max=2.0, scope='per_group'))
    assert isinstance(p, AdaptiveRadius) and p.scope == 'per_group'


@pytest.mark.parametrize('kwargs, message', [
    (dict(rho_min=-0.1), 'rho_min'), (dict(rho_min=3.0, rho_max=2.0), 'rho_max'),
    (dict(scope='group'), 'group')])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveRadius(**kwargs)


def test_missing_or_bad_scores_name_the_group():
    with pytest.raises(ValueError, match="'conv7'"):
        AdaptiveRadius().update([NeuronGroup('conv7', [], 3)])
    with pytest.raises(ValueError, match="'conv8'"):
        AdaptiveRadius().update([group('conv8', [1.0, float('nan')])])
