import pytest
import torch
import torch_pruning as tp

from mmdet_adasap.pruning import ChannelPruner, FlopsCost, ParamsCost, solve
from mmdet_adasap.pruning.channel_groups import TracedPart
from mmdet_adasap.pruning.targets import CostModel, allowed_sizes


def _counted(model, groups):
    """Independent count of the exported model: torch-pruning's counter (conv/linear) and numel()."""
    x = torch.zeros(groups.input_shape)
    _, _, layer_flops, _ = tp.utils.count_ops_and_params(TracedPart(model, groups.forward_fn), x, layer_wise=True)
    flops = sum(v or 0 for m, v in layer_flops.items() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return flops, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch,kind,ranking', [('demo', 'flops', 'global'), ('demo', 'params', 'per_group'),
                                               ('ssdlite', 'flops', 'global'), ('ssdlite', 'flops', 'knapsack')])
def test_target_reached_within_round_to_slack_and_counts_match_torch_pruning(arch, kind, ranking, detector,
                                                                             pruned_export):
    if (kind, ranking) == ('flops', 'global'):  # the shared session export
        pruner, exported, _ = pruned_export(arch)
        kept = pruner.masks.num_kept()
        model = detector(arch)[0]
    else:
        model, shape = detector(arch)
        pruner = ChannelPruner(model, shape, target=dict(type=kind, ratio=0.5), round_to=8, ranking=ranking)
        kept = pruner.prune_one_shot()
        exported = pruner.export()
    dense_flops, dense_params = _counted(model, pruner.groups)
    assert FlopsCost(pruner.groups).dense == dense_flops and ParamsCost(pruner.groups).dense == dense_params
    for g in pruner.groups:
        assert kept[g.name] == g.size or kept[g.name] % 8 == 0
    target = 0.5 * pruner.cost.dense
    assert pruner.current_cost() <= target
    # slack: giving back any one removed round_to block (global, knapsack) / one more block in every group (per group,
    # the largest uniform fraction that fits) must exceed the target
    def grown(name):
        sizes = allowed_sizes(pruner.groups.by_name[name].size, 8)
        return sizes[sizes.index(kept[name]) + 1]
    shrunk = [g.name for g in pruner.groups if kept[g.name] < g.size]
    if ranking in ('global', 'knapsack'):
        assert min(pruner.cost({**kept, n: grown(n)}) for n in shrunk) > target
    else:
        assert pruner.cost({**kept, **{n: grown(n) for n in shrunk}}) > target
    flops, params = _counted(exported, pruner.groups)
    assert flops == FlopsCost(pruner.groups)(kept) and params == ParamsCost(pruner.groups)(kept)
    assert (flops if kind == 'flops' else params) <= target


def test_global_ranking_removes_the_least_important_channels_first(fresh_pruner):
    pruner = fresh_pruner('demo')
    scores = pruner.compute_importance()

    class ChannelCount(CostModel):  # every channel costs the same: the ranking alone decides
        def __call__(self, keep):
            return float(sum(keep.get(g.name, g.size) for g in self.groups))

    cost = ChannelCount(pruner.groups)
    masks = solve(pruner.groups, scores, cost, 0.7 * cost.dense, round_to=1)
    dropped = torch.cat([scores[n][~m] for n, m in masks.items()])
    kept = torch.cat([scores[n][m] for n, m in masks.items()])
    assert dropped.numel() == int(cost.dense) - int(0.7 * cost.dense)
    assert dropped.max() <= kept.min()


def test_already_masked_channels_stay_masked_at_a_looser_target(fresh_pruner):
    pruner = fresh_pruner('demo')
    pruner.prune_to(0.4)
    before = {k: v.clone() for k, v in pruner.masks.masks.items()}
    pruner.prune_to(0.8)
    for name, m in pruner.masks.masks.items():
        assert not (m & ~before[name]).any(), f'{name}: a masked channel came back'


def test_unreachable_target_and_bad_ratio_name_the_value(detector, fresh_pruner):
    with pytest.raises(ValueError, match='0.001'):
        fresh_pruner('demo').prune_to(0.001)
    model, shape = detector('demo')
    for bad in (0.0, 1.0, 2):
        with pytest.raises(ValueError, match=repr(bad)):
            ChannelPruner(model, shape, target=dict(type='flops', ratio=bad))
    with pytest.raises(ValueError, match="'macs'"):
        ChannelPruner(model, shape, target=dict(type='macs', ratio=0.5))


def test_blocked_group_loses_whole_blocks_lowest_block_mean_first():
    """A group with ``block=4`` (e.g. GroupNorm with 4 channels per norm group) keeps multiples of 4 and drops
    whole contiguous blocks, chosen by the block's mean score (not by its single weakest channel)."""
    from types import SimpleNamespace
    groups_list = [SimpleNamespace(name='gn', size=12, block=4), SimpleNamespace(name='plain', size=6, block=1)]

    class Groups(list):
        by_name = {g.name: g for g in groups_list}

    class ChannelCount(CostModel):
        def __call__(self, keep):
            return float(sum(keep.get(g.name, g.size) for g in self.groups))

    gs = Groups(groups_list)
    cost = ChannelCount(gs)
    # block 0 holds the single weakest channel but the highest mean; block 1 has the lowest mean
    gn = torch.tensor([0.0, 9, 9, 9, 1, 1, 1, 1, 5, 5, 5, 5])
    scores = {'gn': gn, 'plain': torch.full((6,), 100.0)}
    masks = solve(gs, scores, cost, target=14, round_to=1)
    assert masks['gn'].tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert masks['plain'].all()
    masks = solve(gs, scores, cost, target=10, round_to=1)
    assert masks['gn'].tolist() == [True] * 4 + [False] * 8 and masks['plain'].all()


def _weighted_groups(sizes, weights):
    """Groups of ``sizes`` channels whose every channel costs ``weights[name]`` (an opaque cost model)."""
    from types import SimpleNamespace
    groups_list = [SimpleNamespace(name=n, size=s, block=1) for n, s in sizes.items()]

    class Groups(list):
        by_name = {g.name: g for g in groups_list}

    class Weighted(CostModel):
        def __call__(self, keep):
            return float(sum(weights[g.name] * keep.get(g.name, g.size) for g in self.groups))

    gs = Groups(groups_list)
    return gs, Weighted(gs)


def test_global_ranking_sets_aside_a_landing_block_that_overshoots_while_cheaper_blocks_remain():
    """The demo's last pruning step removed half of the 16-channel stem group (0.594 -> 0.402 of dense FLOPs for a
    0.5 target): the earlier steps' channels were already masked, so the fill could give nothing back. A landing
    block that would undershoot the target by more than the cost exceeds it is set aside while cheaper ones remain."""
    gs, cost = _weighted_groups({'stem': 16, 'deep': 64}, {'stem': 12, 'deep': 1})  # dense 256
    scores = {'stem': torch.cat([torch.full((8,), 1.5), torch.full((8,), 5.0)]),
              'deep': torch.linspace(0.1, 3.0, 64)}
    masks = {'stem': torch.ones(16, dtype=torch.bool), 'deep': torch.arange(64) >= 24}  # an earlier step's cut
    now = cost({'deep': 40})  # 232
    target = 215.0  # 17 above; the stem block (score 1.5, the lowest live) would take 96, landing at 136
    out = solve(gs, scores, cost, target, round_to=8, masks=masks)
    kept = {n: int(m.sum()) for n, m in out.items()}
    assert kept['stem'] == 16
    assert target - 8 < cost(kept) <= target < now  # landed within one deep block of the target
    assert not (out['deep'] & ~masks['deep']).any()
    live = scores['deep'][masks['deep']]
    assert scores['deep'][out['deep']].min() >= live.sort().values[live.numel() - kept['deep']]  # lowest out first


def test_global_ranking_takes_a_set_aside_block_when_nothing_else_can_go():
    gs, cost = _weighted_groups({'stem': 16, 'deep': 64}, {'stem': 12, 'deep': 1})
    scores = {'stem': torch.cat([torch.full((8,), 1.5), torch.full((8,), 5.0)]),
              'deep': torch.linspace(0.1, 3.0, 64)}
    masks = {'stem': torch.ones(16, dtype=torch.bool), 'deep': torch.arange(64) >= 56}  # deep at its floor (8)
    out = solve(gs, scores, cost, 170.0, round_to=8, masks=masks)  # 30 over; the stem block lands 66 under
    assert int(out['stem'].sum()) == 8 and out['stem'][8:].all() and int(out['deep'].sum()) == 8


def test_global_ranking_lets_an_intermediate_step_land_below_its_target_but_not_below_the_floor():
    """A schedule's intermediate step may take the costly landing block (the next steps remove less); with the
    schedule's final target as the floor, the same block is set aside once it would undershoot the floor."""
    gs, cost = _weighted_groups({'stem': 16, 'deep': 64}, {'stem': 12, 'deep': 1})  # dense 256
    scores = {'stem': torch.cat([torch.full((8,), 1.5), torch.full((8,), 5.0)]),
              'deep': torch.linspace(0.1, 3.0, 64)}
    masks = {'stem': torch.ones(16, dtype=torch.bool), 'deep': torch.arange(64) >= 24}  # cost 232
    target = 215.0  # the stem block lands at 136: 79 under the step target, 17 above the floor of 120
    out = solve(gs, scores, cost, target, round_to=8, masks=masks, floor=120.0)
    assert int(out['stem'].sum()) == 8 and out['stem'][8:].all()
    assert cost({n: int(m.sum()) for n, m in out.items()}) <= target
    out = solve(gs, scores, cost, target, round_to=8, masks=masks, floor=150.0)  # 14 below the floor: aside
    assert int(out['stem'].sum()) == 16


def test_pruner_steps_use_the_schedule_final_ratio_as_the_floor(monkeypatch, fresh_pruner):
    import mmdet_adasap.pruning.pruner as pruner_mod
    from mmdet_adasap.pruning.schedule import build_schedule
    seen = []
    real = pruner_mod.solve

    def spy(*args, **kwargs):
        seen.append((args[3], args[7] if len(args) > 7 else kwargs.get('floor')))
        return real(*args, **kwargs)

    monkeypatch.setattr(pruner_mod, 'solve', spy)
    pruner = fresh_pruner('demo')
    pruner.schedule = build_schedule(dict(type='exponential', steps=2, start=0, interval=1), pruner.ratio)
    pruner.step(0)
    pruner.step(1)
    dense = pruner.cost.dense
    assert [round(t / dense, 4) for t, _ in seen] == [round(0.5 ** 0.5, 4), 0.5]
    assert [round(f / dense, 4) for _, f in seen] == [0.5, 0.5]
    pruner.prune_to(0.45)
    assert round(seen[-1][1] / dense, 4) == 0.45
