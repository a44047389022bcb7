"""The paper's mechanism, measured per neuron: how much the loss rises when a neuron is removed, and how sharp
the loss is along that neuron's own parameters.

AdaSAP's claim (Bair et al., Sec. 3) is that the adaptive warm-up makes the neurons about to be pruned (low
importance) flat, so that removing them costs little. Both quantities here are local to one neuron, i.e. one
channel of a pruner group (:class:`~mmdet_adasap.structures.NeuronGroup`: the producer's filter and bias, BN
affine, coupled partners and the consumers' input columns, exactly what pruning removes):

* **removal sensitivity** ``L(theta with the neuron's slices zeroed) - L(theta)``: the cost of pruning it alone;
* **worst-case sharpness** ``L(theta + eps) - L(theta)`` with ``eps = rho * g_n / ||g_n||`` restricted to the
  neuron's slices (the SAM ascent step of radius ``rho`` on that neuron only);
* **Hessian trace** of the neuron's block, Hutchinson's estimate ``E[v^T H_nn v]`` with Rademacher ``v`` on the
  neuron's slices (one Hessian-vector product by double backward per sample).

``loss_fn`` is any closure returning a scalar loss on fixed data (the tool uses fixed val batches through the
detector's own ``loss``); the model should be in eval mode so that BN statistics stay fixed.
"""
import contextlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch

from mmdet_adasap.structures.neuron_groups import NeuronGroup

LossFn = Callable[[], torch.Tensor]


def _views(group: NeuronGroup, channel: int):
    """(param, dim, index) of every slice of one neuron."""
    return [(s.param, s.dim, s.index[channel:channel + 1]) for s in group.slices]


@contextlib.contextmanager
def neuron_edited(group: NeuronGroup, channel: int, edit: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]):
    """Temporarily replace the neuron's slices by ``edit(param, dim, index)``; restored exactly on exit."""
    saved = []
    with torch.no_grad():
        for p, dim, idx in _views(group, channel):
            saved.append((p, dim, idx, p.index_select(dim, idx).clone()))
        for p, dim, idx in _views(group, channel):
            p.index_copy_(dim, idx, edit(p, dim, idx))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, dim, idx, old in reversed(saved):
                p.index_copy_(dim, idx, old)


def _loss(loss_fn: LossFn) -> float:
    with torch.no_grad():
        return float(loss_fn())


def removal_sensitivity(groups: Sequence[NeuronGroup], loss_fn: LossFn,
                        channels: Optional[Dict[str, Iterable[int]]] = None) -> Dict[str, Dict[int, float]]:
    """Per neuron: the loss increase when it alone is masked (all its slices zero)."""
    base = _loss(loss_fn)
    out = {}
    for g in groups:
        out[g.name] = {}
        for c in _channels(g, channels):
            with neuron_edited(g, c, lambda p, d, i: torch.zeros_like(p.index_select(d, i))):
                out[g.name][c] = _loss(loss_fn) - base
    return out


def _gradients(loss_fn: LossFn, params: List[torch.Tensor], create_graph: bool = False):
    loss = loss_fn()
    return loss, torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)


def _params(groups: Sequence[NeuronGroup]) -> List[torch.nn.Parameter]:
    seen = {}
    for g in groups:
        for s in g.slices:
            seen.setdefault(id(s.param), s.param)
    return list(seen.values())


def worst_case_sharpness(groups: Sequence[NeuronGroup], loss_fn: LossFn, rho: float = 0.05,
                         channels: Optional[Dict[str, Iterable[int]]] = None) -> Dict[str, Dict[int, float]]:
    """Per neuron: ``L(theta + rho * g_n / ||g_n||) - L(theta)``, the gradient taken once at ``theta``
    (a neuron with zero gradient gets 0: no first-order ascent direction)."""
    params = _params(groups)
    loss, grads = _gradients(loss_fn, params)
    grad_of = {id(p): (g if g is not None else torch.zeros_like(p)) for p, g in zip(params, grads)}
    base = float(loss.detach())
    out = {}
    for g in groups:
        out[g.name] = {}
        for c in _channels(g, channels):
            parts = [grad_of[id(p)].index_select(d, i) for p, d, i in _views(g, c)]
            norm = torch.sqrt(sum((t.double() ** 2).sum() for t in parts))
            if norm == 0:
                out[g.name][c] = 0.0
                continue
            step = iter([rho * t / norm.to(t.dtype) for t in parts])
            with neuron_edited(g, c, lambda p, d, i: p.index_select(d, i) + next(step)):
                out[g.name][c] = _loss(loss_fn) - base
    return out


def hessian_trace(groups: Sequence[NeuronGroup], loss_fn: LossFn, samples: int = 8, seed: int = 0,
                  channels: Optional[Dict[str, Iterable[int]]] = None) -> Dict[str, Dict[int, float]]:
    """Per neuron: Hutchinson's estimate of the trace of its Hessian block, mean of ``samples`` ``v^T H v``."""
    params = _params(groups)
    _, grads = _gradients(loss_fn, params, create_graph=True)
    grads = [g if g is not None else torch.zeros_like(p) for p, g in zip(params, grads)]
    pos = {id(p): k for k, p in enumerate(params)}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for g in groups:
        out[g.name] = {}
        for c in _channels(g, channels):
            views = _views(g, c)
            total = 0.0
            for _ in range(samples):
                vs = [torch.zeros_like(p) for p in params]
                for p, d, i in views:
                    shape = list(p.shape)
                    shape[d] = 1
                    v = (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(p.dtype)
                    vs[pos[id(p)]].index_copy_(d, i, v)
                gv = sum((gr * v).sum() for gr, v in zip(grads, vs))
                hv = torch.autograd.grad(gv, params, retain_graph=True, allow_unused=True)
                total += float(sum((h * v).sum() for h, v in zip(hv, vs) if h is not None))
            out[g.name][c] = total / samples
    return out


def _channels(group: NeuronGroup, channels: Optional[Dict[str, Iterable[int]]]) -> List[int]:
    if channels is None:
        return list(range(group.num_channels))
    return [int(c) for c in channels.get(group.name, ())]


def importance_ranks(groups: Sequence[NeuronGroup], scores: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Global ascending rank (0 = first to be pruned) of every neuron under the pruner's default global ranking
    (scores divided by their group's mean)."""
    flat, owner = [], []
    for g in groups:
        s = scores[g.name].double()
        mean = s.abs().mean()
        flat.append(s / mean if mean > 0 else s)
        owner += [(g.name, c) for c in range(g.num_channels)]
    order = torch.argsort(torch.cat(flat), stable=True)
    ranks = {g.name: torch.empty(g.num_channels, dtype=torch.long) for g in groups}
    for r, k in enumerate(order.tolist()):
        name, c = owner[k]
        ranks[name][c] = r
    return ranks


def spread_channels(ranks: Dict[str, torch.Tensor], per_group: int) -> Dict[str, List[int]]:
    """``per_group`` channels of every group, evenly spaced over that group's importance order (its least and
    most important ones included), so that a budgeted probe still covers the whole rank range."""
    out = {}
    for name, r in ranks.items():
        order = torch.argsort(r).tolist()
        n = len(order)
        k = min(per_group, n)
        picks = sorted({order[round(j * (n - 1) / max(1, k - 1))] for j in range(k)})
        out[name] = picks
    return out
