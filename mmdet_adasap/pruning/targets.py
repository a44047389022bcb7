"""Resource targets (parameters, FLOPs, latency) and the solver that turns a target into channel counts.

Costs are evaluated analytically from the per-layer shapes recorded at trace time, so the solver can try
thousands of channel configurations per second:

* ``params``: every parameter of the model (untraced parts are a constant);
* ``flops``: conv + linear multiply-accumulates of the traced forward, by torch-pruning's counter's own
  formula (``tp.utils.count_ops_and_params``; tests check the two agree exactly on exported models);
* ``latency``: a HALP-style lookup table of per-layer latencies measured on the target machine
  (:mod:`.latency`), interpolated in (in, out) channels, plus the measured rest of the network.

The solver removes blocks of ``round_to`` channels (combined with a group's own ``block``, see
:func:`group_step`), lowest importance first, until the cost is at or below
the target: ``ranking='global'`` compares (per-group normalised) importance across groups (then gives back
the most important removed blocks that still fit, so no single block can be returned without exceeding the
target), ``'per_layer'`` keeps the same fraction in every group. Already-masked channels are always removed
first and never come back.
"""
import heapq
import math
from typing import Dict, List, Optional, Tuple

import torch

from .channel_groups import ChannelGroups, LayerShape

COST_TYPES = ('params', 'flops', 'latency')


def check_ratio(ratio, what: str = 'ratio') -> float:
    if not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(f'{what} must lie in (0, 1) (fraction of the dense cost to keep), got {ratio!r}')
    return float(ratio)


def _layer_channels(layer: LayerShape, keep: Dict[str, int]) -> Tuple[int, int, int]:
    cin = keep.get(layer.in_group, layer.in_channels) if layer.in_group else layer.in_channels
    cout = keep.get(layer.out_group, layer.out_channels) if layer.out_group else layer.out_channels
    groups = cout if layer.depthwise else layer.groups
    if layer.depthwise:
        cin = cout
    return cin, cout, groups


class CostModel:
    """Cost of a channel configuration ``keep = {group name: channels kept}`` (missing = dense)."""
    name = 'cost'

    def __init__(self, groups: ChannelGroups):
        self.groups = groups
        self.dense = self(dict())

    def __call__(self, keep: Dict[str, int]) -> float:
        raise NotImplementedError


class ParamsCost(CostModel):
    name = 'params'

    def __init__(self, groups: ChannelGroups):
        model = groups.model
        total = sum(p.numel() for p in model.parameters())
        self._touched = self._variable(groups, {})
        self._const = total - self._touched
        super().__init__(groups)

    @staticmethod
    def _variable(groups: ChannelGroups, keep: Dict[str, int]) -> int:
        n = 0
        for layer in groups.layers.values():
            cin, cout, g = _layer_channels(layer, keep)
            n += cout * (cin // g) * layer.kernel_elems + (cout if layer.bias else 0)
        for module_name, (group, per_channel) in groups.extra_params.items():
            dense = groups.model.get_submodule(module_name)
            size = next(dense.parameters()).shape[0] if group not in keep else keep[group]
            n += per_channel * size
        return n

    def __call__(self, keep: Dict[str, int]) -> float:
        return float(self._const + self._variable(self.groups, keep))


class FlopsCost(CostModel):
    """Conv/linear MACs of the traced part at its trace input, exactly as torch-pruning's counter counts them."""
    name = 'flops'

    def __call__(self, keep: Dict[str, int]) -> float:
        batch = self.groups.input_shape[0]
        total = 0
        for layer in self.groups.layers.values():
            cin, cout, g = _layer_channels(layer, keep)
            if layer.kind == 'conv':
                total += batch * layer.positions * (layer.kernel_elems * cin * (cout // g) + (cout if layer.bias
                                                                                               else 0))
            else:
                total += layer.in_tokens * cin * cout + (cout if layer.bias else 0)
        return float(total)


class LatencyCost(CostModel):
    """Sum of per-layer latencies from a measured lookup table (see :mod:`.latency`) plus the measured rest."""
    name = 'latency'

    def __init__(self, groups: ChannelGroups, table: dict):
        from .latency import check_table
        check_table(table, groups)
        self.table = table
        super().__init__(groups)

    def __call__(self, keep: Dict[str, int]) -> float:
        from .latency import interpolate
        total = self.table['rest_ms']
        for name, entry in self.table['layers'].items():
            cin, cout, _ = _layer_channels(self.groups.layers[name], keep)
            total += interpolate(entry, cin, cout)
        return float(total)


def build_cost(kind: str, groups: ChannelGroups, latency_table: Optional[dict] = None) -> CostModel:
    if kind == 'params':
        return ParamsCost(groups)
    if kind == 'flops':
        return FlopsCost(groups)
    if kind == 'latency':
        if latency_table is None:
            raise ValueError('a latency target needs a latency lookup table (latency_table=...); '
                             'measure one with mmdet_adasap.pruning.latency.measure_latency_table')
        return LatencyCost(groups, latency_table)
    raise ValueError(f'unknown target type {kind!r}; choose one of {COST_TYPES}')


def allowed_sizes(size: int, round_to: int) -> List[int]:
    """Channel counts a group may keep: multiples of ``round_to`` below its size, and its full size."""
    return sorted({size} | {k for k in range(round_to, size, round_to)})


def group_step(group, round_to: int) -> int:
    """The unit a group's kept count moves in: ``round_to`` combined with the group's ``block`` (lcm)."""
    return math.lcm(round_to, max(1, int(getattr(group, 'block', 1))))


def block_pooled(scores: torch.Tensor, block: int) -> torch.Tensor:
    """Each channel's score replaced by its block's mean, so that importance order removes whole blocks
    (a stable sort keeps equal-scored blocks contiguous, channels being numbered block by block)."""
    if block <= 1:
        return scores
    if scores.numel() % block:
        raise ValueError(f'a group of {scores.numel()} channels cannot be cut into blocks of {block}')
    return scores.view(-1, block).mean(dim=1, keepdim=True).expand(-1, block).reshape(-1)


def _normalised(scores: torch.Tensor, how: Optional[str]) -> torch.Tensor:
    scores = scores.double()
    if how in (None, 'none'):
        return scores
    ref = scores.mean() if how == 'mean' else scores.max()
    return scores / ref if ref > 0 else scores


def solve(groups: ChannelGroups, importance: Dict[str, torch.Tensor], cost: CostModel, target: float,
          round_to: int = 1, ranking: str = 'global', normalize: Optional[str] = 'mean',
          masks: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """Keep-masks whose cost is <= ``target`` (absolute, same unit as ``cost``), lowest importance out first.

    ``masks``: current masks; channels already masked stay masked. Raises ``ValueError`` naming the target when
    even the smallest allowed configuration (``round_to`` channels per group) costs more.
    """
    if ranking not in ('global', 'per_layer'):
        raise ValueError(f"ranking must be 'global' or 'per_layer', got {ranking!r}")
    if not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f'round_to must be a positive int, got {round_to!r}')
    order, sizes = {}, {}
    importance = {g.name: block_pooled(importance[g.name].double(), g.block) for g in groups}
    for g in groups:
        score = importance[g.name].clone()
        if masks is not None and g.name in masks:
            score[~masks[g.name]] = -math.inf  # already pruned: first out
        order[g.name] = torch.argsort(score, stable=True)  # ascending: removal order
        sizes[g.name] = allowed_sizes(g.size, group_step(g, round_to))
    floor = {name: s[0] for name, s in sizes.items()}
    if cost(floor) > target:
        raise ValueError(f'{cost.name} target {target:.6g} ({target / cost.dense:.6g} of dense) is unreachable: keeping only {round_to} channel(s) '
                         f'per group (round_to={round_to}) still costs {cost(floor):.6g} '
                         f'(dense {cost.dense:.6g}); raise the ratio, lower round_to or prune more layers')
    start = {}  # never give back channels that are already masked
    for g in groups:
        live = g.size if masks is None or g.name not in masks else int(masks[g.name].sum())
        start[g.name] = next(s for s in sizes[g.name] if s >= live)
    keep = dict(start)
    if cost(keep) > target:
        if ranking == 'per_layer':
            keep = _per_layer(groups, sizes, cost, target, start)
        else:
            keep = _global(groups, importance, order, sizes, cost, target, normalize, masks, start)
    out = {}
    for g in groups:
        m = torch.ones(g.size, dtype=torch.bool)
        m[order[g.name][:g.size - keep[g.name]]] = False
        out[g.name] = m
    return out


def _global(groups, importance, order, sizes, cost, target, normalize, masks, start):
    keep = dict(start)
    norm = {}
    for g in groups:
        score = importance[g.name].double()
        if masks is not None and g.name in masks and not bool(masks[g.name].all()):
            live = masks[g.name]
            score = score.clone()
            score[live] = _normalised(score[live], normalize)
            score[~live] = -math.inf
        else:
            score = _normalised(score, normalize)
        norm[g.name] = score[order[g.name]]  # ascending
    heap = []

    def push(name):
        s = sizes[name]
        i = s.index(keep[name])
        if i == 0:
            return
        lo, hi = groups.by_name[name].size - s[i], groups.by_name[name].size - s[i - 1]
        score = float(norm[name][lo:hi].mean())  # -inf if it holds an already-masked channel
        heapq.heappush(heap, (score, name, s[i - 1]))

    for g in groups:
        push(g.name)
    while heap and cost(keep) > target:
        _, name, new_size = heapq.heappop(heap)
        keep[name] = new_size
        push(name)
    # fill the slack: the last block removed can cost far more than needed (round_to channels of a small,
    # high-resolution group), so give back the most important removed blocks that still fit under the target
    while True:
        best = None
        for g in groups:
            s, name = sizes[g.name], g.name
            i = s.index(keep[name])
            if keep[name] >= start[name]:
                continue
            lo, hi = g.size - s[i + 1], g.size - s[i]
            score = float(norm[name][lo:hi].mean())
            if (best is None or score > best[0]) and cost({**keep, name: s[i + 1]}) <= target:
                best = (score, name, s[i + 1])
        if best is None:
            return keep
        keep[best[1]] = best[2]


def _per_layer(groups, sizes, cost, target, start):
    def config(frac):
        return {g.name: min(start[g.name], next(s for s in sizes[g.name] if s >= min(frac * g.size, g.size)))
                for g in groups}

    lo, hi = 0.0, 1.0  # cost(config(lo)) <= target is guaranteed by the caller's floor check
    for _ in range(40):
        mid = (lo + hi) / 2
        if cost(config(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return config(lo)
