"""The HALP knapsack solver (``ranking='knapsack'``) against brute force on small synthetic problems.

Groups and layers are built by hand (no tracing): a chain ``stem -> a -> b (+ depthwise on b) -> c -> head``
whose FLOPs / params couple consecutive groups (a consumer's input columns follow its producer's group), plus a
separable cost (each term depends on one group) on which the dynamic programme must be exactly optimal.
"""
import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from mmdet_adasap.pruning.channel_groups import LayerShape
from mmdet_adasap.pruning.targets import (CostModel, FlopsCost, ParamsCost, Term, allowed_sizes, group_step,
                                          solve)


class FakeGroups(list):
    """What the cost models and the solver read of a ChannelGroups, without a model to trace."""

    def __init__(self, sizes, layers, blocks=None):
        super().__init__(SimpleNamespace(name=n, size=s, block=(blocks or {}).get(n, 1)) for n, s in sizes.items())
        self.by_name = {g.name: g for g in self}
        self.layers = {l.name: l for l in layers}
        self.input_shape = (1, 3, 8, 8)
        self.extra_params = {}
        self.model = torch.nn.Conv2d(1, 1, 1)  # 2 params of "rest" for ParamsCost


def conv(name, cin, cout, in_group=None, out_group=None, k=9, positions=16, groups=1):
    """A layer whose input / output channels are all one group's (group size = the layer's channels)."""
    return LayerShape(name, 'conv', cin, cout, groups, k, positions, 0, False, (1, cin, 4, 4),
                      ((in_group, 1, cin),) if in_group else (), ((out_group, 1, cout),) if out_group else ())


def chain(a=12, b=16, c=8):
    layers = [conv('stem', 3, a, out_group='a', positions=64), conv('a2b', a, b, 'a', 'b', positions=16),
              conv('dw', b, b, 'b', 'b', groups=b, positions=16), conv('b2c', b, c, 'b', 'c', k=1, positions=4),
              conv('head', c, 5, 'c', None, positions=4)]
    return FakeGroups(dict(a=a, b=b, c=c), layers)


class Separable(CostModel):
    """Each group's cost is its own (non-linear, stepwise, latency-like) function of its count."""
    name = 'separable'

    def __init__(self, groups, price):
        self.price = price
        super().__init__(groups)

    def terms(self):
        return [Term(lambda keep, n=g.name, s=g.size: self.price[n](keep.get(n, s)), (g.name,)) for g in self.groups]


def value(scores, keep):
    return sum(float(scores[n].sort(descending=True).values[:k].sum()) for n, k in keep.items())


def brute_force(groups, scores, cost, target, round_to, live=None):
    names = [g.name for g in groups]
    options = []
    for g in groups:
        sizes = allowed_sizes(g.size, group_step(g, round_to))
        top = live[g.name] if live else g.size
        options.append([s for s in sizes if s <= top])
    best = -math.inf
    for combo in itertools.product(*options):
        keep = dict(zip(names, combo))
        if cost(keep) <= target:
            best = max(best, value(scores, keep))
    return best


def random_scores(groups, seed):
    g = torch.Generator().manual_seed(seed)
    return {x.name: torch.rand(x.size, generator=g) * (1 + 3 * torch.rand(1, generator=g)) for x in groups}


def kept(masks):
    return {n: int(m.sum()) for n, m in masks.items()}


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('round_to', [1, 4])
def test_separable_cost_is_solved_exactly(seed, round_to):
    groups = chain()
    gen = torch.Generator().manual_seed(100 + seed)
    steps = {g.name: (torch.rand(g.size + 1, generator=gen) * 5).round().cumsum(0).tolist() for g in groups}
    cost = Separable(groups, {n: (lambda k, s=s: s[k]) for n, s in steps.items()})
    scores = random_scores(groups, seed)
    for frac in (0.3, 0.5, 0.8):
        target = math.floor(frac * cost.dense)
        if cost({g.name: allowed_sizes(g.size, round_to)[0] for g in groups}) > target:
            continue
        masks = solve(groups, scores, cost, target, round_to=round_to, ranking='knapsack')
        got = kept(masks)
        assert cost(got) <= target
        assert value(scores, got) == pytest.approx(brute_force(groups, scores, cost, target, round_to), abs=1e-9)


@pytest.mark.parametrize('kind', ['flops', 'params'])
@pytest.mark.parametrize('seed', range(4))
def test_coupled_chain_within_budget_and_near_brute_force(kind, seed):
    """FLOPs / params couple a -> b -> c (a consumer's input columns follow the producer): the knapsack is at
    least as good as the global ranking and within 2 % of the brute-force optimum, never over budget."""
    groups = chain()
    cost = (FlopsCost if kind == 'flops' else ParamsCost)(groups)
    scores = random_scores(groups, seed)
    for frac in (0.35, 0.5, 0.7):
        target = frac * cost.dense
        best = brute_force(groups, scores, cost, target, 4)
        got = kept(solve(groups, scores, cost, target, round_to=4, ranking='knapsack'))
        greedy = kept(solve(groups, scores, cost, target, round_to=4, ranking='global'))
        assert cost(got) <= target
        assert value(scores, got) >= value(scores, greedy) - 1e-9
        assert value(scores, got) >= 0.98 * best


def test_depthwise_layer_counted_once_and_coupled_inputs_priced():
    groups = chain(a=12, b=16, c=8)
    flops = FlopsCost(groups)
    keep = dict(a=4, b=8, c=8)
    # hand count: stem 64*9*3*4, a2b 16*9*4*8, dw (groups = 8, one input channel per filter) 16*9*1*8,
    # b2c 4*1*8*8, head 4*9*8*5
    assert flops(keep) == 64 * 9 * 3 * 4 + 16 * 9 * 4 * 8 + 16 * 9 * 8 + 4 * 8 * 8 + 4 * 9 * 8 * 5
    # a group's price includes its consumers' input columns: shrinking b changes a2b, dw and b2c
    assert flops.group_costs(keep, 'b', [16])[0] - flops(keep) == 16 * 9 * 4 * 8 + 16 * 9 * 8 + 4 * 8 * 8


def test_within_group_order_round_to_and_masked_channels_never_return():
    groups = chain()
    cost = FlopsCost(groups)
    scores = random_scores(groups, 7)
    first = solve(groups, scores, cost, 0.6 * cost.dense, round_to=4, ranking='knapsack')
    for g in groups:
        n = int(first[g.name].sum())
        assert n == g.size or n % 4 == 0
        dropped = scores[g.name][~first[g.name]]
        assert dropped.numel() == 0 or dropped.max() <= scores[g.name][first[g.name]].min()
    # a looser target later: masked channels stay masked, even if they are now the most important
    boosted = {n: s + 10 * (~first[n]).float() for n, s in scores.items()}
    second = solve(groups, boosted, cost, 0.8 * cost.dense, round_to=4, ranking='knapsack', masks=first)
    for n in first:
        assert not (second[n] & ~first[n]).any()
    # tighter target: the optimum among configurations that keep masked channels out
    live = kept(first)
    target = 0.4 * cost.dense
    third = kept(solve(groups, scores, cost, target, round_to=4, ranking='knapsack', masks=first))
    assert cost(third) <= target and all(third[n] <= live[n] for n in live)
    masked_scores = {n: s.masked_fill(~first[n], 0.) for n, s in scores.items()}
    assert value(masked_scores, third) >= 0.98 * brute_force(groups, masked_scores, cost, target, 4, live)


def test_blocks_are_kept_whole():
    groups = FakeGroups(dict(gn=12, plain=6), [conv('x', 3, 12, None, 'gn'), conv('y', 12, 6, 'gn', 'plain'),
                                               conv('z', 6, 5, 'plain', None)], blocks=dict(gn=4))
    cost = FlopsCost(groups)
    scores = {'gn': torch.tensor([0.0, 9, 9, 9, 1, 1, 1, 1, 5, 5, 5, 5]), 'plain': torch.rand(6)}
    masks = solve(groups, scores, cost, 0.6 * cost.dense, round_to=1, ranking='knapsack')
    m = masks['gn'].view(3, 4)
    assert (m.all(dim=1) | ~m.any(dim=1)).all()  # every block all in or all out
    assert cost(kept(masks)) <= 0.6 * cost.dense


def test_budget_below_the_smallest_model_names_the_minimum():
    groups = chain()
    cost = FlopsCost(groups)
    floor = cost(dict(a=4, b=4, c=4))
    with pytest.raises(ValueError, match=f'{floor / cost.dense:.4g}'):
        solve(groups, random_scores(groups, 0), cost, 0.5 * floor, round_to=4, ranking='knapsack')
    with pytest.raises(ValueError, match="'greedy'"):
        solve(groups, random_scores(groups, 0), cost, cost.dense, ranking='greedy')
