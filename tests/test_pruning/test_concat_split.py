"""Groups that own part of a layer's channels: concatenation, split, a tensor concatenated with itself (SPP),
channel attention over a concatenation (RTMDet's CSP layer), a reshape that stacks channels.

Each small model has its groups written out by hand (which channels of which layer go together); then, brute
force, every single channel of every group is dropped alone and the export must compute what the masked model
computes (the export's layer-by-layer self-check plus the final outputs compared here), and the cost models
must count the exported model as torch-pruning's counter does.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from mmdet_adasap.pruning import ChannelMasks, ChannelPruner, FlopsCost, ParamsCost, build_channel_groups
from mmdet_adasap.pruning.channel_groups import TracedPart, UnfollowableChannels
from mmdet_adasap.pruning.export import export_pruned

SHAPE = (1, 3, 12, 12)


def call(m, x):
    return m(x)


def conv_bn(cin, cout, k=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Concat(nn.Module):
    """Two producers concatenated into one consumer."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = conv_bn(3, 4, 3), conv_bn(3, 6, 3), nn.Conv2d(10, 5, 1)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), self.b(x)], 1))


class Split(nn.Module):
    """One producer split (unevenly) between two consumers."""

    def __init__(self):
        super().__init__()
        self.p, self.q, self.r = conv_bn(3, 10, 3), nn.Conv2d(4, 5, 1), nn.Conv2d(6, 5, 1)

    def forward(self, x):  # split sizes that follow the consumers (hard-coded sizes could not be exported)
        y1, y2 = torch.split(self.p(x), [self.q.in_channels, self.r.in_channels], dim=1)
        return self.q(y1) + self.r(y2)


class SPP(nn.Module):
    """A tensor concatenated with its poolings: one producer channel is three consumer input channels."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(3, 6, 3), nn.Conv2d(18, 5, 1)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(torch.cat([y, F.max_pool2d(y, 3, 1, 1), F.max_pool2d(y, 5, 1, 2)], 1))


class Attention(nn.Module):
    """RTMDet's CSP layer in small: two branches concatenated, re-weighted per channel by a 1x1 conv on the
    pooled concatenation, then a consumer."""

    def __init__(self):
        super().__init__()
        self.main, self.short = conv_bn(3, 4, 3), conv_bn(3, 6, 3)
        self.fc, self.final = nn.Conv2d(10, 10, 1), nn.Conv2d(10, 5, 1)

    def forward(self, x):
        y = torch.cat([self.main(x), self.short(x)], 1)
        return self.final(y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True))))


class Stack(nn.Module):
    """A reshape that stacks two producer channels into one consumer channel."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(4, 6, 1), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.conv1(x)
        b, c, h, w = y.shape
        return self.head(self.conv2(y.reshape(b, c // 2, 2 * h, w)))


def r(*a):
    return list(range(*a))


#: model -> {group: {(member, role): [its channel per group channel, one list per copy]}} (hand-derived)
EXPECTED = {
    Concat: {'a.0': {('a.0', 'out'): [r(4)], ('a.1', 'bn'): [r(4)], ('c', 'in'): [r(4)]},
             'b.0': {('b.0', 'out'): [r(6)], ('b.1', 'bn'): [r(6)], ('c', 'in'): [r(4, 10)]}},
    Split: {'p.0#0': {('p.0', 'out'): [r(4)], ('p.1', 'bn'): [r(4)], ('q', 'in'): [r(4)]},
            'p.0#1': {('p.0', 'out'): [r(4, 10)], ('p.1', 'bn'): [r(4, 10)], ('r', 'in'): [r(6)]}},
    SPP: {'conv1.0': {('conv1.0', 'out'): [r(6)], ('conv1.1', 'bn'): [r(6)],
                      ('conv2', 'in'): [r(6), r(6, 12), r(12, 18)]}},
    Attention: {'main.0': {('main.0', 'out'): [r(4)], ('main.1', 'bn'): [r(4)], ('fc', 'in'): [r(4)],
                           ('fc', 'out'): [r(4)], ('final', 'in'): [r(4)]},
                'short.0': {('short.0', 'out'): [r(6)], ('short.1', 'bn'): [r(6)], ('fc', 'in'): [r(4, 10)],
                            ('fc', 'out'): [r(4, 10)], ('final', 'in'): [r(4, 10)]}},
    Stack: {'conv1': {('conv1', 'out'): [[0, 2, 4, 6], [1, 3, 5, 7]], ('conv2', 'in'): [r(4)]},
            'conv2': {('conv2', 'out'): [r(6)], ('head', 'in'): [r(6)]}},
}


def _model(cls):
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():  # non-trivial BN statistics: a wrongly sliced BN shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 1.5), m.weight.data.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize('cls', list(EXPECTED), ids=lambda c: c.__name__)
def test_groups_own_the_hand_derived_slices(cls):
    groups = build_channel_groups(_model(cls), SHAPE, forward_fn=call)
    got = {}
    for g in groups:
        members = got.setdefault(g.name, {})
        for name, role, index in g.members:
            members.setdefault((name, role), []).append(index.tolist())
    assert got == EXPECTED[cls]


def conv_macs(model, x):
    """torch-pruning's counter on the conv / linear layers (what FlopsCost counts)."""
    _, _, layer_flops, _ = tp.utils.count_ops_and_params(TracedPart(model, call), x, layer_wise=True)
    return sum(v or 0 for m, v in layer_flops.items() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _masked_and_exported(model, keep):
    groups = build_channel_groups(model, SHAPE, forward_fn=call)
    masks = ChannelMasks(groups)
    masks.set(keep)
    masks.apply()
    return groups, export_pruned(groups, masks.masks)  # raises if any layer's kept channels differ


@pytest.mark.parametrize('cls', list(EXPECTED), ids=lambda c: c.__name__)
def test_every_single_channel_drop_exports_exactly_and_costs_match_the_counter(cls):
    dense = _model(cls)
    sizes = {g.name: g.size for g in build_channel_groups(dense, SHAPE, forward_fn=call)}
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    trials = [{n: torch.arange(s) != j for n, s in sizes.items() if n == name}
              for name, size in sizes.items() for j in range(size)]
    gen = torch.Generator().manual_seed(2)
    trials += [{n: torch.rand(s, generator=gen) < 0.6 for n, s in sizes.items()} for _ in range(4)]
    for keep in trials:
        keep = {n: k if k.any() else torch.arange(k.numel()) == 0 for n, k in keep.items()}
        model = copy.deepcopy(dense)
        groups, exported = _masked_and_exported(model, keep)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-6)
        counts = {n: int(k.sum()) for n, k in keep.items()}
        assert FlopsCost(groups)(counts) == conv_macs(exported, x)
        assert ParamsCost(groups)(counts) == sum(p.numel() for p in exported.parameters())


def test_one_shot_prune_of_the_attention_csp_lands_on_the_flops_target():
    pruner = ChannelPruner(_model(Attention), SHAPE, target=dict(type='flops', ratio=0.6), round_to=1,
                           forward_fn=call)
    pruner.prune_one_shot()
    exported = pruner.export()
    x = torch.randn(SHAPE)
    macs = conv_macs(exported, x)
    assert macs <= 0.6 * pruner.cost.dense and pruner.cost_ratio() == pytest.approx(macs / pruner.cost.dense)
    assert exported.fc.out_channels == exported.final.in_channels < 10


class _Gain(nn.Module):
    """A per-channel gain: a module with channel parameters that this package cannot slice."""

    def __init__(self, c):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * self.gain[None, :, None, None]


class TwoGains(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.ga, self.b, self.gb = nn.Conv2d(3, 8, 3, padding=1), _Gain(8), nn.Conv2d(8, 8, 3, padding=1), \
            _Gain(8)
        self.mid, self.head = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.mid(self.gb(self.b(self.ga(self.a(x))))))


def test_modules_that_cannot_be_followed_are_listed_at_once_with_a_verified_way_out():
    model = TwoGains().eval()
    with pytest.raises(UnfollowableChannels) as info:
        ChannelPruner(model, SHAPE, forward_fn=call)
    err = info.value
    assert set(err.problems) == {'ga', 'gb'} and err.ignored_layers == ['ga', 'gb'] and err.verified
    message = str(err)
    assert "'ga': unsupported module type _Gain" in message and "'gb': unsupported module type _Gain" in message
    assert "ignored_layers=['ga', 'gb'] (verified: " in message
    pruner = ChannelPruner(model, SHAPE, forward_fn=call, ignored_layers=err.ignored_layers, round_to=1,
                           target=dict(type='flops', ratio=0.95))
    assert [g.name for g in pruner.groups] == ['mid']
    pruner.prune_one_shot()
    assert pruner.export().mid.out_channels < 8
