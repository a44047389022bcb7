"""The sharpness-aware perturbation eps: which tensors, which radius per element, how normalised.

SAM:  eps = rho * g / ||g||.   ASAM: eps = rho * T^2 g / ||T g||, T = |w| + eta on weight tensors (conv, linear,
norm gamma, bare scales), T = 1 on biases. Both are ``eps = T * u * c`` with ``u = T g``; only the coefficient
``c`` differs between the radius modes:

* no neuron groups (plain SAM/ASAM): one unit, ``c = rho / ||u||``;
* ``normalize='global'``: ``c_e = rho_e / ||u||`` (per-element radius, one norm);
* ``normalize='neuron'``: ``c_e = rho_i / ||u_i||`` for the neuron ``i`` that owns element ``e``.

Ownership: an element can lie in several neurons (a conv weight ``[out, in]`` is in its own output-channel
neuron along dim 0 and in the producer's neuron along dim 1 as a consumer slice). It belongs to the covering
slice with the lowest ``dim`` (the producing side; ties go to the earlier group); elements no slice covers form
one "ungrouped" unit with the wrapper's ``rho``; elements in any masked (pruned) neuron form a "dead" unit with
radius 0 and are left out of every norm. Everything per-element is precomputed here, once per pruning step
(radius refreshes only rewrite the radius vector), so a step costs only a handful of fused ``torch._foreach_*`` kernels (plus one index_add/gather per grouped
tensor).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

UNGROUPED, DEAD, FIRST_NEURON = 0, 1, 2
_TINY = 1e-24  # floor of squared norms: a zero gradient gives eps = 0, not NaN


def _norm_types() -> tuple:
    types = [_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm]
    try:  # mmcv's MMSyncBN is not a torch _BatchNorm subclass
        from mmcv.ops import SyncBatchNorm as MMSyncBN  # needs mmcv's compiled ops (optional)
        types.append(MMSyncBN)
    except ImportError:  # pragma: no cover - mmcv without compiled ops
        pass
    return tuple(types)


def norm_stat_buffers(model: nn.Module) -> List[torch.Tensor]:
    """Running statistics that a training-mode forward updates (torch BN/SyncBN, mmcv MMSyncBN, InstanceNorm
    with tracked stats, and any module following the same ``running_*`` buffer convention)."""
    found = []
    for m in model.modules():
        for name in ('running_mean', 'running_var', 'num_batches_tracked'):
            b = m._buffers.get(name) if hasattr(m, '_buffers') else None
            if isinstance(b, torch.Tensor):
                found.append(b)
    return found


class PerturbationPlan:
    """The per-tensor recipe of eps for one model + radius policy.

    Two parts with different lifetimes: the *structure* (which tensors, which unit owns each element, which
    neurons are dead) is rebuilt only when the model, the parameters, ``rho`` / ``adaptive`` or the policy's
    groups or masks change (pruning steps); the *values* (one radius per neuron) are refreshed in place by
    :meth:`set_radii` whenever the policy recomputes them (AdaSAP refreshes them every few iterations).

    Args:
        model: the unwrapped model (names and module types decide T and exclusions).
        params: the parameters to consider, in the optimizer's order (frozen ones are dropped).
        rho: radius of everything no neuron group covers.
        adaptive: ASAM (True) or SAM (False).
        eta: ASAM's offset in T = |w| + eta.
        normalize: ``'neuron'`` or ``'global'`` (only matters when the policy has groups).
        groups, channel_radii: from the radius policy (may be empty).
        perturb_bias, perturb_norm, exclude: which tensors are perturbed at all.
    """

    def __init__(self, model: nn.Module, params: Sequence[nn.Parameter], *, rho: float, adaptive: bool,
                 eta: float, normalize: str, groups=(), channel_radii=(), perturb_bias: bool = True,
                 perturb_norm: bool = True, exclude: Optional[str] = None) -> None:
        names = {id(p): n for n, p in model.named_parameters()}
        norm_ids = {id(p) for m in model.modules() if isinstance(m, _norm_types())
                    for p in m.parameters(recurse=False)}
        pattern = re.compile(exclude) if exclude else None
        self.params: List[nn.Parameter] = []
        self.names: List[str] = []
        for p in params:
            if not p.requires_grad:
                continue
            name = names.get(id(p), '')
            if (not perturb_bias and name.endswith('bias')) or (not perturb_norm and id(p) in norm_ids) \
                    or (pattern is not None and pattern.search(name)):
                continue
            self.params.append(p)
            self.names.append(name)
        self.adaptive, self.eta, self.rho, self.normalize = adaptive, float(eta), float(rho), normalize
        # ASAM's T = |w| + eta applies to weight-like tensors; biases (incl. norm beta) keep T = 1
        self.scaled = [adaptive and not n.endswith('bias') for n in self.names]
        # per element: owning unit ('neuron' mode) or dead mask ('global' mode); None: whole tensor ungrouped
        self.owner: List[Optional[torch.Tensor]] = [None] * len(self.params)
        self.radius: List[Optional[torch.Tensor]] = [None] * len(self.params)  # 'global' mode, per element
        self._radius_ids: List[Optional[torch.Tensor]] = [None] * len(self.params)  # 'global' mode: unit ids
        self._gathered: List[Optional[torch.Tensor]] = [None] * len(self.params)
        self._unit_sizes: List[int] = []
        device = self.params[0].device if self.params else torch.device('cpu')
        self.unit_rho = torch.tensor([self.rho, 0.], device=device)
        self.grouped = bool(groups)
        if self.grouped:
            self._assign_owners(groups)
            self.set_radii(channel_radii)

    def set_radii(self, channel_radii: Sequence[torch.Tensor]) -> None:
        """Refresh the radius values in place: the structure (which element belongs to which neuron, which
        neurons are dead) stays, so a radius refresh costs one copy per grouped tensor, not a rebuild."""
        sizes = [int(n) for n in self._unit_sizes]
        if len(channel_radii) != len(sizes) or any(r.numel() != n for r, n in zip(channel_radii, sizes)):
            raise ValueError(f'set_radii: expected {len(sizes)} radius vectors of sizes {sizes}, got '
                             f'{[int(r.numel()) for r in channel_radii]}')
        values = torch.cat([self.unit_rho.new_tensor([self.rho, 0.])]
                           + [r.detach().to(self.unit_rho.device, torch.float32).flatten() for r in channel_radii])
        self.unit_rho.copy_(values)
        for i, ids in enumerate(self._radius_ids):
            if ids is not None:
                torch.index_select(self.unit_rho, 0, ids.view(-1), out=self._gathered[i])
                self.radius[i].copy_(self._gathered[i].view_as(self.radius[i]))

    def _assign_owners(self, groups) -> None:
        """The structure: per grouped tensor, the unit that owns each element (and the dead elements)."""
        index_of = {id(p): i for i, p in enumerate(self.params)}
        covering: Dict[int, list] = {}  # param index -> [(dim, group order, slice, first neuron id, kept)]
        self._unit_sizes = [g.num_channels for g in groups]
        num_units = FIRST_NEURON + sum(self._unit_sizes)
        base = FIRST_NEURON
        for order, g in enumerate(groups):
            for s in g.slices:
                i = index_of.get(id(s.param))
                if i is None:
                    continue
                if s.index.numel() != g.num_channels:
                    raise ValueError(f'neuron group {g.name!r}: slice {s.name or self.names[i]!r} has '
                                     f'{s.index.numel()} indices for {g.num_channels} channels')
                covering.setdefault(i, []).append((s.dim, order, s, base, g.kept()))
            base += g.num_channels
        for i, entries in covering.items():
            p = self.params[i]
            owner = torch.full(p.shape, UNGROUPED, dtype=torch.long, device=p.device)
            dead = torch.zeros(p.shape, dtype=torch.bool, device=p.device)
            # highest dim / latest group first, so the lowest dim / earliest group writes last and wins
            for dim, order, s, base, kept in sorted(entries, key=lambda e: (e[0], e[1]), reverse=True):
                idx = s.index.to(p.device)
                view = [1] * p.dim()
                view[dim] = -1
                ids = torch.arange(base, base + idx.numel(), device=p.device).view(view)
                owner.index_copy_(dim, idx, ids.expand_as(owner.index_select(dim, idx)).contiguous())
                pruned = idx[~kept.to(p.device)]
                if pruned.numel():
                    dead.index_fill_(dim, pruned, True)
            owner[dead] = DEAD
            # int32 ids halve the memory of these per-element maps (index_add_ and gathers accept them)
            self.owner[i] = owner.to(torch.int32) if num_units < 2**31 else owner
        self.unit_rho = torch.zeros(num_units, device=self.unit_rho.device)
        if self.normalize == 'global':  # the global formula reads a per-element radius and the dead mask
            for i, owner in enumerate(self.owner):
                if owner is not None:
                    self._radius_ids[i] = owner.long()
                    self._gathered[i] = torch.empty(owner.numel(), device=owner.device)
                    self.radius[i] = torch.empty(owner.shape, device=owner.device, dtype=self.params[i].dtype)
                    dead = owner == DEAD
                    self.owner[i] = dead if dead.any() else None

    def compute(self, grads: List[torch.Tensor], active: Optional[List[int]] = None
                ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """eps for ``grads`` (one per plan param, or per index in ``active``), and the squared norm of the
        whole ``u = T g`` (non-finite iff some gradient is; the caller all-reduces that decision)."""
        idx = range(len(self.params)) if active is None else active
        params = [self.params[i] for i in idx]
        owners = [self.owner[i] for i in idx]
        scaled = [self.scaled[i] for i in idx]
        u = list(grads)
        ts = [None] * len(u)
        sel = [k for k, s in enumerate(scaled) if s]
        if sel:
            t = torch._foreach_abs([params[k].detach() for k in sel])
            torch._foreach_add_(t, self.eta)
            tu = torch._foreach_mul([grads[k] for k in sel], t)
            for k, tk, uk in zip(sel, t, tu):
                ts[k], u[k] = tk, uk
        if not self.grouped:
            total_sq = torch.stack(torch._foreach_norm(u)).float().square().sum()
            coef = self.rho / total_sq.clamp_min(_TINY).sqrt()
            return self._finish(u, ts, coef), total_sq
        if self.normalize == 'global':  # here ``owners`` holds the dead-element masks
            alive = [uk if dead is None else uk.masked_fill(dead, 0.) for uk, dead in zip(u, owners)]
            total_sq = torch.stack(torch._foreach_norm(alive)).float().square().sum()
            inv = total_sq.clamp_min(_TINY).rsqrt()
            coefs = [inv * (self.rho if self.radius[i] is None else self.radius[i]) for i in idx]
            return self._finish(u, ts, coefs), total_sq
        unit_sq = torch.zeros(len(self.unit_rho), device=u[0].device, dtype=torch.float32)
        whole = [k for k, o in enumerate(owners) if o is None]
        if whole:
            unit_sq[UNGROUPED] = torch.stack(torch._foreach_norm([u[k] for k in whole])).float().square().sum()
        for k, o in enumerate(owners):
            if o is not None:
                unit_sq.index_add_(0, o.view(-1), u[k].detach().float().reshape(-1).square())
        unit_coef = self.unit_rho * unit_sq.clamp_min(_TINY).rsqrt()
        coefs = [unit_coef[UNGROUPED] if o is None else unit_coef[o].to(u[k].dtype) for k, o in enumerate(owners)]
        return self._finish(u, ts, coefs), unit_sq.sum()

    @staticmethod
    def _finish(u, ts, coefs) -> List[torch.Tensor]:
        """eps = T * u * c, with T = 1 where unscaled (``coefs``: one scalar tensor or one per tensor)."""
        eps = torch._foreach_mul(u, coefs)
        sel = [k for k, t in enumerate(ts) if t is not None]
        if sel:
            torch._foreach_mul_([eps[k] for k in sel], [ts[k] for k in sel])
        return eps
