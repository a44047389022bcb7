"""In-graph module timing (what a latency table learns per module) and the allocator fix its timings rely on."""
import platform
import time

import pytest
import torch
import torch.nn as nn

from mmdet_adasap.pruning.ingraph import ModuleTimer, channel_probe, time_modules
from mmdet_adasap.pruning.latency_measure import fit_affine, fit_curve
from mmdet_adasap.pruning.latency_table import curve_at
from mmdet_adasap.utils.timing import steady_allocator


class Sleeper(nn.Module):
    def __init__(self, ms):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        time.sleep(self.ms / 1e3)
        return x


class GapNet(nn.Module):
    """a (20 ms), then 10 ms of functional work outside any module, then b (5 ms)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = Sleeper(20), Sleeper(5)

    def forward(self, x):
        x = self.a(x)
        time.sleep(0.010)
        return self.b(x[:, :3])


def test_a_module_is_charged_what_ran_since_the_previous_module_ended():
    net = GapNet()
    with ModuleTimer(net) as timer:
        timer.reset()
        net(torch.zeros(1, 8, 4, 4))
    assert set(timer.last) == {'a', 'b'}
    assert 20 <= timer.last['a'] < 20 + 10  # its own sleep (the gap comes after it)
    assert timer.last['b'] >= 15  # its own 5 ms plus the 10 ms between a and b
    assert timer.channels == {'a': 8, 'b': 3}
    # round-robin over two models: one median per module and model
    other = GapNet()
    medians = time_modules([lambda: net(torch.zeros(1, 8, 2, 2)), lambda: other(torch.zeros(1, 8, 2, 2))],
                           [net, other], ['a', 'b'], repeats=3)
    assert [sorted(m) for m in medians] == [['a', 'b'], ['a', 'b']]
    assert all(m['b'] >= 15 and m['a'] >= 20 for m in medians)
    assert not net.a._forward_hooks and not net.a._forward_pre_hooks  # hooks removed


def test_channel_probe_finds_the_group_each_module_follows(fresh_pruner):
    groups = fresh_pruner('demo').groups
    probe = channel_probe(groups, ['backbone.maxpool', 'backbone.bn1', 'backbone.layer1.0.bn1',
                                   'backbone.layer1.0.relu', 'bbox_head.cls_convs.0.0'])
    assert probe['backbone.maxpool'] == (16, {'backbone.conv1': 1.0})  # the stem's pool follows the stem group
    assert probe['backbone.bn1'] == (16, {'backbone.conv1': 1.0})
    assert probe['backbone.layer1.0.bn1'] == (16, {'backbone.layer1.0.conv1': 1.0})
    # BasicBlock's one ReLU runs twice: after conv1 (its own group) and after the residual add (the stem's)
    assert probe['backbone.layer1.0.relu'] == (32, {'backbone.layer1.0.conv1': 1.0, 'backbone.conv1': 1.0})
    # a prediction conv's input channels follow the group of the feature map it reads
    dense, follows = probe['bbox_head.cls_convs.0.0']
    assert len(follows) == 1 and list(follows.values()) == [1.0] and dense == groups.by_name[next(iter(follows))].size


def test_fits_against_closed_forms():
    assert fit_affine([1, 2, 4], [2.5, 4.5, 8.5]) == pytest.approx([2.0, 0.5])
    assert fit_affine([3, 3, 3], [1.0, 5.0, 2.0]) == [0.0, 2.0]  # nothing varies: the median
    curve = fit_curve([8, 16, 8, 16, 16], [1.0, 4.0, 3.0, 5.0, 9.0])
    assert curve == [[8.0, 16.0], [2.0, 5.0]]  # medians at each distinct x
    assert curve_at(curve, 12) == pytest.approx(3.5) and curve_at(curve, 4) == 2.0 and curve_at(curve, 99) == 5.0


def test_steady_allocator_is_set_once_on_glibc():
    first = steady_allocator()
    assert first is (platform.libc_ver()[0] == 'glibc')
    assert steady_allocator() is first
