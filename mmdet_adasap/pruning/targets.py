"""Resource targets (parameters, FLOPs, latency) and the solvers that turn a target into channel counts.

Costs are evaluated analytically from the per-layer shapes recorded at trace time, so the solvers can try
thousands of channel configurations per second. Every cost is a constant plus one *term* per layer (and per
BN / L2Norm module for params); a term depends on the kept counts of the groups that set the layer's input and
output channels, so a group's cost at each of its allowed sizes re-evaluates only the terms it touches
(:meth:`CostModel.group_costs`):

* ``params``: every parameter of the model (untraced parts are a constant);
* ``flops``: conv + linear multiply-accumulates of the traced forward, by torch-pruning's counter's own
  formula (``tp.utils.count_ops_and_params``; tests check the two agree exactly on exported models);
* ``latency``: a HALP-style lookup table measured on the target machine (:mod:`.latency_table`, built by
  :mod:`.latency_measure`).

Three solvers (``ranking``), all keeping each group's channels in importance order (a group's choice is *how
many*), moving counts in :func:`group_step` units (``round_to`` combined with the group's ``block``) and never
giving back an already-masked channel:

* ``'global'``: remove blocks lowest (normalised) importance first until the cost fits, then give back the
  most important removed blocks that still fit. Blind to what a block costs, except at the landing: a block
  that would take the cost further below the *floor* than it is above the target is set aside while others
  remain (half of a small high-resolution group, when the earlier steps' channels can no longer be given
  back). The floor is the schedule's final target: an intermediate step may land below its own target (the
  next steps then remove less), the final step may not undershoot by more than it overshoots.
* ``'per_group'``: the same kept fraction in every group (bisection on the fraction).
* ``'knapsack'`` (HALP): maximise the kept importance subject to cost <= target, a multiple-choice knapsack
  solved by dynamic programming over the groups. A layer's cost depends on two groups (its input channels
  come from the producer's group): the solver linearises the cost around a reference configuration (each
  group's options priced with every other group at the reference, consumers' input columns included), solves
  the knapsack, re-linearises around the solution and repeats until it is stable, tightening the budget by
  the linearisation error when the true cost overshoots; the best configuration whose *true* cost fits wins,
  any slack is filled block by block, and a pairwise local search (a block to one group, one from another)
  on the true cost fixes what the linearisation misjudged. HALP prices a layer with input counts from the previous step only
  (one linearisation per step, errors carried to the next step); iterating within the step lands on the
  target in every step. Exact (matches brute force) when costs are separable and integral (params / FLOPs of
  uncoupled groups); a close, always-feasible optimum otherwise (3-group chains with a depthwise layer:
  optimal in 359 of 360 random cases, worst 0.93 of the optimum).
"""
import heapq
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.checks import check_int
from .channel_groups import ChannelGroups, LayerShape, kept_channels, layer_channels
from .latency_table import check_table, table_terms

COST_TYPES = ('params', 'flops', 'latency')
RANKINGS = ('global', 'per_group', 'knapsack')
#: what a latency target may require of its table
LATENCY_KEYS = ('batch', 'device', 'threads', 'runtime', 'precision')


def check_ratio(ratio, what: str = 'target ratio') -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(f'{what} {ratio!r} is not a fraction in (0, 1) (the fraction of the dense cost to keep; '
                         '1 or more keeps the whole dense model and prunes nothing)')
    return float(ratio)


def check_cost_type(kind) -> str:
    if kind not in COST_TYPES:
        raise ValueError(f'unknown target type {kind!r}; choose one of {COST_TYPES}')
    return kind


def check_ranking(ranking) -> str:
    if ranking not in RANKINGS:
        raise ValueError(f'ranking must be one of {RANKINGS}, got {ranking!r}')
    return ranking


@dataclass
class Term:
    """One additive part of a cost: ``fn(keep)``, which depends only on the kept counts of ``groups``."""
    fn: Callable[[Dict[str, int]], float]
    groups: Tuple[str, ...]


class CostModel:
    """Cost of a channel configuration ``keep = {group name: channels kept}`` (missing = dense): a constant
    plus :class:`Term` s. Subclasses implement :meth:`terms` (and may set ``const``), or override
    ``__call__`` for an opaque cost (then :meth:`group_costs` evaluates whole configurations)."""
    name = 'cost'
    const = 0.0

    def __init__(self, groups: ChannelGroups):
        self.groups = groups
        self._terms: Optional[List[Term]] = self.terms()
        self._touching: Dict[str, List[Term]] = {}
        for t in self._terms or ():
            for g in set(t.groups):
                self._touching.setdefault(g, []).append(t)
        self.dense = self(dict())

    def terms(self) -> Optional[List[Term]]:
        return None

    def __call__(self, keep: Dict[str, int]) -> float:
        return float(self.const + sum(t.fn(keep) for t in self._terms))

    def group_costs(self, keep: Dict[str, int], name: str, sizes: Sequence[int]) -> List[float]:
        """The total cost with group ``name`` at each of ``sizes`` and every other group as in ``keep``."""
        if self._terms is None:
            return [self({**keep, name: k}) for k in sizes]
        touching = self._touching.get(name, [])
        base = self(keep) - sum(t.fn(keep) for t in touching)
        out = []
        for k in sizes:
            trial = {**keep, name: k}
            out.append(base + sum(t.fn(trial) for t in touching))
        return out


class ParamsCost(CostModel):
    name = 'params'

    def terms(self) -> List[Term]:
        groups = self.groups
        out = [Term(lambda keep, layer=layer: self._layer(layer, keep), layer.groups_touching)
               for layer in groups.layers.values()]
        for module_name, (parts, per_channel) in groups.extra_params.items():
            dense = next(groups.model.get_submodule(module_name).parameters()).shape[0]
            out.append(Term(lambda keep, p=parts, n=per_channel, d=dense: n * kept_channels(d, p, keep),
                            tuple(g for g, _, _ in parts)))
        total = sum(p.numel() for p in groups.model.parameters())
        self.const = total - sum(t.fn({}) for t in out)
        return out

    @staticmethod
    def _layer(layer: LayerShape, keep) -> int:
        cin, cout, g = layer_channels(layer, keep)
        return cout * (cin // g) * layer.kernel_elems + (cout if layer.bias else 0)


class FlopsCost(CostModel):
    """Conv/linear MACs of the traced part at its trace input, exactly as torch-pruning's counter counts them."""
    name = 'flops'

    def terms(self) -> List[Term]:
        batch = self.groups.input_shape[0]
        return [Term(lambda keep, layer=layer: self._layer(layer, keep, batch), layer.groups_touching)
                for layer in self.groups.layers.values()]

    @staticmethod
    def _layer(layer: LayerShape, keep, batch) -> int:
        cin, cout, g = layer_channels(layer, keep)
        if layer.kind == 'conv':
            return batch * layer.positions * (layer.kernel_elems * cin * (cout // g) + (cout if layer.bias else 0))
        return layer.in_tokens * cin * cout + (cout if layer.bias else 0)


class LatencyCost(CostModel):
    """Latency predicted by a measured lookup table (:mod:`.latency_table`): per-layer interpolated timings, the
    per-channel cost of what runs between the layers, and the rest of the network."""
    name = 'latency'

    def __init__(self, groups: ChannelGroups, table: dict, expect: Optional[dict] = None):
        check_table(table, groups, expect)
        self.table = table
        super().__init__(groups)

    def terms(self) -> List[Term]:
        self.const, terms = table_terms(self.table, self.groups)
        return [Term(fn, gs) for fn, gs in terms]


def build_cost(kind: str, groups: ChannelGroups, latency_table: Optional[dict] = None,
               expect: Optional[dict] = None) -> CostModel:
    """``expect``: what the latency table must have been measured with (``batch``, ``device``, ``threads``,
    ``runtime``, ``precision``)."""
    if kind == 'params':
        return ParamsCost(groups)
    if kind == 'flops':
        return FlopsCost(groups)
    if kind == 'latency':
        if latency_table is None:
            raise ValueError('a latency target needs a latency lookup table (latency_table=...); build one with '
                             'tools/build_latency_table.py CONFIG (see the config header)')
        return LatencyCost(groups, latency_table, expect)
    check_cost_type(kind)


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


@dataclass
class Problem:
    """One solver call: per group its removal order, allowed sizes up to its live count (``start``), and the
    descending scores of the channels it can keep (-inf: already masked)."""
    groups: ChannelGroups
    cost: 'CostModel'
    target: float
    order: Dict[str, torch.Tensor]  # ascending score: removal order
    ranked: Dict[str, torch.Tensor]  # scores in removal order (ascending, -inf first)
    sizes: Dict[str, List[int]]  # allowed sizes <= start
    start: Dict[str, int]
    floor: float  # the global ranking's landing may not go further below it than the cost is above target

    def value(self, name: str, k: int) -> float:
        """Importance kept by the group's top ``k`` channels (masked channels count 0)."""
        r = self.ranked[name]
        top = r[r.numel() - k:]
        return float(top[torch.isfinite(top)].sum())

    def up(self, keep, name) -> Optional[int]:
        s = self.sizes[name]
        i = s.index(keep[name])
        return s[i + 1] if i + 1 < len(s) else None

    def down(self, keep, name) -> Optional[int]:
        s = self.sizes[name]
        i = s.index(keep[name])
        return s[i - 1] if i > 0 else None


def solve(groups: ChannelGroups, importance: Dict[str, torch.Tensor], cost: CostModel, target: float,
          round_to: int = 1, ranking: str = 'global', masks: Optional[Dict[str, torch.Tensor]] = None,
          floor: Optional[float] = None) -> Dict[str, torch.Tensor]:
    """Keep-masks whose cost is <= ``target`` (absolute, same unit as ``cost``).

    ``floor`` (absolute, <= ``target``; default ``target``): the final target of a pruning schedule, which
    the global ranking's landing block is measured against (module docstring).

    ``importance``: per-group scores, comparable across groups for 'global' / 'knapsack' (the importance's
    ``normalize`` option). ``masks``: current masks; channels already masked stay masked. Raises
    ``ValueError`` naming the target and the smallest cost the constraints allow when even that is too much.
    """
    check_ranking(ranking)
    check_int(round_to, 'round_to')
    problem = _problem(groups, importance, cost, target, round_to, masks,
                       target if floor is None else min(floor, target))
    keep = dict(problem.start)
    if cost(keep) > target:
        keep = dict(global_=_global, per_group=_per_group, knapsack=_knapsack)[
            'global_' if ranking == 'global' else ranking](problem)
    out = {}
    for g in groups:
        m = torch.ones(g.size, dtype=torch.bool)
        m[problem.order[g.name][:g.size - keep[g.name]]] = False
        if masks is not None and g.name in masks:
            m &= masks[g.name].cpu()  # a masked channel never returns (even off the round_to grid)
        out[g.name] = m
    return out


def _problem(groups, importance, cost, target, round_to, masks, floor) -> Problem:
    order, ranked, sizes, start = {}, {}, {}, {}
    for g in groups:
        score = block_pooled(importance[g.name].double().cpu(), g.block).clone()
        live = g.size
        if masks is not None and g.name in masks:
            score[~masks[g.name].cpu()] = -math.inf  # already pruned: first out
            live = int(masks[g.name].sum())
        order[g.name] = torch.argsort(score, stable=True)
        ranked[g.name] = score[order[g.name]]
        allowed = allowed_sizes(g.size, group_step(g, round_to))
        start[g.name] = next(s for s in allowed if s >= live)
        sizes[g.name] = [s for s in allowed if s <= start[g.name]]
    smallest = cost({name: s[0] for name, s in sizes.items()})
    if smallest > target:
        raise ValueError(f'{cost.name} target {target:.6g} ({target / cost.dense:.4g} of dense) is unreachable: '
                         f'the smallest model the constraints allow (round_to={round_to}, block sizes, '
                         f'channels already kept) costs {smallest:.6g} ({smallest / cost.dense:.4g} of dense '
                         f'{cost.dense:.6g}); raise the ratio to at least {smallest / cost.dense:.4g}, lower '
                         'round_to or prune more layers')
    return Problem(groups, cost, target, order, ranked, sizes, start, floor)


# ------------------------------------------------------------------------------------------ global ranking
def _global(p: Problem) -> Dict[str, int]:
    keep, heap, aside = dict(p.start), [], []

    def block_score(name, lo_k, hi_k):  # mean score of the channels between counts lo_k and hi_k
        size = p.groups.by_name[name].size
        return float(p.ranked[name][size - hi_k:size - lo_k].mean())  # -inf if it holds a masked channel

    def push(name):
        lower = p.down(keep, name)
        if lower is not None:
            heapq.heappush(heap, (block_score(name, lower, keep[name]), name, lower))

    for g in p.groups:
        push(g.name)
    now = p.cost(keep)
    while now > p.target and heap:
        # a block that would land further below the floor than the cost is above the target (a costly block
        # of a small high-resolution group) is set aside, freezing its group, while other blocks remain
        score, name, new_size = heapq.heappop(heap)
        after = p.cost.group_costs(keep, name, [new_size])[0]
        if p.floor - after > now - p.target:
            aside.append((name, new_size))
            continue
        keep[name], now = new_size, after
        push(name)
    if now > p.target:  # every remaining block lands below the target: take the one that lands closest
        name, new_size = max(aside, key=lambda a: p.cost.group_costs(keep, a[0], [a[1]])[0])
        keep[name] = new_size
    # fill the slack: give back the most important removed blocks that still fit under the target
    return _fill(p, keep, lambda name, k, up, extra: block_score(name, k, up))


def _fill(p: Problem, keep: Dict[str, int], rank) -> Dict[str, int]:
    """Give back one block at a time, best ``rank(name, k, k_up, extra_cost)`` first, while the cost fits."""
    keep = dict(keep)
    now = p.cost(keep)
    while True:
        best = None
        for g in p.groups:
            up = p.up(keep, g.name)
            if up is None:
                continue
            new = p.cost.group_costs(keep, g.name, [up])[0]
            if new <= p.target:
                r = rank(g.name, keep[g.name], up, new - now)
                if best is None or r > best[0]:
                    best = (r, g.name, up, new)
        if best is None:
            return keep
        _, name, up, now = best
        keep[name] = up


# ------------------------------------------------------------------------------------------ per group
def _per_group(p: Problem) -> Dict[str, int]:
    def config(frac):
        return {g.name: next(s for s in p.sizes[g.name] if s >= min(frac * g.size, p.start[g.name]))
                for g in p.groups}

    lo, hi = 0.0, 1.0  # cost(config(0)) = the floor's cost <= target (checked in _problem)
    for _ in range(40):
        mid = (lo + hi) / 2
        if p.cost(config(mid)) <= p.target:
            lo = mid
        else:
            hi = mid
    return config(lo)


# ------------------------------------------------------------------------------------------ knapsack
def _knapsack(p: Problem, bins: int = 4096, rounds: int = 6) -> Dict[str, int]:
    values = {g.name: np.array([p.value(g.name, k) for k in p.sizes[g.name]]) for g in p.groups}
    ref, shrink, best, keep = dict(p.start), 0.0, None, None
    for _ in range(rounds):
        keep = _linear_knapsack(p, values, ref, p.target - shrink, bins)
        true = p.cost(keep)
        if true <= p.target:
            filled = _swap(p, _fill(p, keep, _gain_rank(p)))
            total = sum(p.value(n, k) for n, k in filled.items())
            if best is None or total > best[0]:
                best = (total, filled)
            if keep == ref:
                break
        else:
            shrink += true - p.target  # the linear model under-priced this configuration by that much
        ref = keep
    if best is None:  # still over budget after every round: remove the cheapest-to-lose blocks
        return _swap(p, _fill(p, _repair(p, keep), _gain_rank(p)))
    return best[1]


def _swap(p: Problem, keep: Dict[str, int], rounds: int = 50) -> Dict[str, int]:
    """Local search on the true cost: give a block to one group and take one from another while that keeps
    more importance and fits (corrects what the linearisation of coupled layers misjudged)."""
    keep = dict(keep)
    for _ in range(rounds):
        now = p.cost(keep)
        ups, downs = [], []  # (importance change, group, new size, linear cost change)
        for g in p.groups:
            n, up, down = g.name, p.up(keep, g.name), p.down(keep, g.name)
            if up is not None:
                ups.append((p.value(n, up) - p.value(n, keep[n]), n, up,
                            p.cost.group_costs(keep, n, [up])[0] - now))
            if down is not None:
                downs.append((p.value(n, keep[n]) - p.value(n, down), n, down,
                              p.cost.group_costs(keep, n, [down])[0] - now))
        slack = p.target - now
        moves = sorted(((gain - loss, a, up, b, down) for gain, a, up, extra in ups
                        for loss, b, down, saving in downs
                        if a != b and gain > loss and extra + saving <= slack + 1e-9 * abs(p.target)),
                       reverse=True)
        for _, a, up, b, down in moves:
            trial = {**keep, a: up, b: down}
            if p.cost(trial) <= p.target:
                keep = _fill(p, trial, _gain_rank(p))
                break
        else:
            return keep
    return keep


def _gain_rank(p: Problem):
    """Give back the block that returns the most importance per unit of cost (ties: the most importance)."""
    def rank(name, k, up, extra):
        gain = p.value(name, up) - p.value(name, k)
        return (gain / extra if extra > 0 else math.inf, gain)
    return rank


def _repair(p: Problem, keep: Dict[str, int]) -> Dict[str, int]:
    keep, now = dict(keep), p.cost(keep)
    while now > p.target:
        best = None
        for g in p.groups:
            lower = p.down(keep, g.name)
            if lower is None:
                continue
            new = p.cost.group_costs(keep, g.name, [lower])[0]
            loss = p.value(g.name, keep[g.name]) - p.value(g.name, lower)
            saving = now - new
            r = loss / saving if saving > 0 else math.inf
            if best is None or r < best[0]:
                best = (r, g.name, lower, new)
        if best is None:
            raise RuntimeError('knapsack repair: no group can shrink further although the floor fits')
        _, name, lower, now = best
        keep[name] = lower
    return keep


def _linear_knapsack(p: Problem, values, ref, budget, bins) -> Dict[str, int]:
    """Multiple-choice knapsack on the cost linearised at ``ref``: each group's options priced with every other
    group at ``ref``; exact integer DP when the weights are small integers, else ``bins`` capacity units with
    weights rounded up (never under the linear price)."""
    names = [g.name for g in p.groups]
    base = p.cost(ref)
    deltas = [np.array(p.cost.group_costs(ref, n, p.sizes[n])) - base for n in names]
    floor = sum(float(d.min()) for d in deltas)
    capacity = budget - base - floor
    weights = [d - d.min() for d in deltas]
    if capacity < 0:
        return {n: p.sizes[n][int(np.argmin(d))] for n, d in zip(names, deltas)}
    integral = all(np.allclose(w, np.round(w), rtol=0, atol=1e-6) for w in weights)
    unit = 1.0 if (integral and capacity <= bins) or capacity == 0 else capacity / bins
    cap = int(math.floor(capacity / unit + 1e-9))
    units = [np.ceil(w / unit - 1e-9).astype(np.int64) for w in weights]
    dp = np.zeros(cap + 1)  # best value with total weight <= c
    choices = []
    for n, u in zip(names, units):
        v = values[n]
        new = np.full(cap + 1, -np.inf)
        arg = np.zeros(cap + 1, dtype=np.int64)
        for j in range(len(u)):
            w = int(u[j])
            if w > cap:
                continue
            cand = np.full(cap + 1, -np.inf)
            cand[w:] = dp[:cap + 1 - w] + v[j]
            better = cand > new
            new[better] = cand[better]
            arg[better] = j
        dp = new
        choices.append(arg)
    keep, c = {}, cap
    for n, u, arg in zip(reversed(names), reversed(units), reversed(choices)):
        j = int(arg[c])
        keep[n] = p.sizes[n][j]
        c -= int(u[j])
    return keep
