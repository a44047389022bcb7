"""Per-channel importance of each coupled group, as pluggable criteria in mmdet's ``TASK_UTILS`` registry.

A criterion maps a :class:`ChannelGroups` to ``{group name: FloatTensor[group size]}`` (higher = keep).
Criteria that need gradients (Taylor) accumulate them through :meth:`BaseImportance.accumulate`, which the
pruning hook calls after every backward; their running state lives in checkpoints via ``state_dict``.
Register your own with ``@TASK_UTILS.register_module()`` on a :class:`BaseImportance` subclass.

Score normalisation lives here and only here (``normalize``, an option of every criterion): raw L2 norms /
Taylor scores differ in scale across layers by orders of magnitude, so a global ranking, the knapsack and
the adaptive sharpness radius (which all compare scores across groups) read scores divided by a statistic of
the group's *kept* channels. Per-group solvers are unaffected by it.
"""
from typing import Dict, Optional, Union

import torch
from mmdet.registry import TASK_UTILS

from .channel_groups import ChannelGroup, ChannelGroups

#: short names accepted wherever an importance type is expected
ALIASES = {'l2': 'L2Importance', 'taylor': 'TaylorImportance', 'bn_scale': 'BNScaleImportance'}
_PRODUCER_ROLES = ('out', 'dw', 'bn', 'gn', 'scale')
NORMALIZE = (None, 'mean', 'max', 'l2')


def _reduce(t: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over every dim but ``dim``, at ``index``: one float64 value per channel, on ``t``'s device
    (the radius refresh runs every iteration: no host round trip on a GPU)."""
    other = [d for d in range(t.dim()) if d != dim]
    per = t.sum(dim=other) if other else t
    return per.index_select(0, index.to(per.device)).double()


def _zeros(group: ChannelGroup) -> torch.Tensor:
    """A float64 accumulator of one value per channel, on the device of the group's parameters."""
    device = group.slices[0].param.device if group.slices else None
    return torch.zeros(group.size, dtype=torch.float64, device=device)


class BaseImportance:
    """Base class: ``__call__`` returns current scores; ``accumulate`` is a no-op unless gradients matter.

    Args:
        normalize: divide each group's scores by the ``'mean'`` (default), ``'max'`` or ``'l2'`` norm of its
            kept channels' scores (``masks`` given to ``__call__``; all channels otherwise), or None (raw).
    """
    needs_grad = False

    def __init__(self, normalize: Optional[str] = 'mean'):
        if normalize not in NORMALIZE:
            raise ValueError(f'{type(self).__name__}: unknown normalize {normalize!r}, expected one of {NORMALIZE}')
        self.normalize = normalize

    def __call__(self, groups: ChannelGroups, masks: Optional[Dict[str, torch.Tensor]] = None
                 ) -> Dict[str, torch.Tensor]:
        raw = self.scores(groups)
        return {name: self._normalised(s, None if masks is None else masks.get(name)) for name, s in raw.items()}

    def scores(self, groups: ChannelGroups) -> Dict[str, torch.Tensor]:
        """Raw (unnormalised) scores, on the parameters' device."""
        return {g.name: self.group_importance(g).float() for g in groups}

    def _normalised(self, s: torch.Tensor, kept: Optional[torch.Tensor]) -> torch.Tensor:
        if self.normalize is None:
            return s
        ref = s if kept is None else s[kept.to(s.device)]
        if ref.numel() == 0:
            return s
        stat = {'mean': ref.abs().mean(), 'max': ref.abs().max(), 'l2': ref.norm()}[self.normalize]
        return s / stat if stat > 0 else s

    def group_importance(self, group: ChannelGroup) -> torch.Tensor:
        raise NotImplementedError

    def accumulate(self, groups: ChannelGroups, grads: Optional[dict] = None) -> None:
        """Called after each backward; ``grads`` maps parameter -> gradient when ``.grad`` was already cleared."""

    def reset(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@TASK_UTILS.register_module()
class L2Importance(BaseImportance):
    """L2 norm of each neuron's weights (AdaSAP_P's criterion): the producer's filter and bias, BN affine
    params and L2Norm scale; with ``include_consumers`` also the consumers' input columns."""

    def __init__(self, include_consumers: bool = False, normalize: Optional[str] = 'mean'):
        super().__init__(normalize)
        self.include_consumers = include_consumers

    def group_importance(self, group: ChannelGroup) -> torch.Tensor:
        total = _zeros(group)
        for s, role in zip(group.slices, group.slice_roles):
            if role in _PRODUCER_ROLES or self.include_consumers:
                total += _reduce(s.param.detach().pow(2), s.dim, s.index)
        return total.sqrt()


@TASK_UTILS.register_module()
class TaylorImportance(BaseImportance):
    """First-order Taylor importance (Molchanov et al. 2019): per iteration ``(sum over the neuron's
    parameters of w * dL/dw) ** 2``, averaged over the iterations seen since the last reset. Uses every
    slice of the group (producer and consumer), since all of them vanish with the neuron."""
    needs_grad = True

    def __init__(self, normalize: Optional[str] = 'mean'):
        super().__init__(normalize)
        self._sum: Dict[str, torch.Tensor] = {}
        self._count = 0

    def accumulate(self, groups: ChannelGroups, grads: Optional[dict] = None) -> None:
        seen_grad = False
        for g in groups:
            score = _zeros(g)
            for s in g.slices:
                grad = s.param.grad if grads is None else grads.get(s.param)
                if grad is None:
                    continue
                seen_grad = True
                score += _reduce(s.param.detach() * grad.detach(), s.dim, s.index)
            prev = self._sum.get(g.name)
            self._sum[g.name] = score.pow(2) if prev is None else prev.to(score.device) + score.pow(2)
        if seen_grad:
            self._count += 1

    def scores(self, groups: ChannelGroups) -> Dict[str, torch.Tensor]:
        if self._count == 0:
            raise RuntimeError('TaylorImportance has seen no gradients: call accumulate() after backward '
                               '(the PruningHook does this every training iteration)')
        return {g.name: (self._sum[g.name] / self._count).float() for g in groups}

    def reset(self) -> None:
        self._sum, self._count = {}, 0

    def state_dict(self) -> dict:
        return {'sum': {k: v.detach().cpu().clone() for k, v in self._sum.items()}, 'count': self._count}

    def load_state_dict(self, state: dict) -> None:
        self._sum, self._count = dict(state.get('sum', {})), int(state.get('count', 0))


@TASK_UTILS.register_module()
class BNScaleImportance(BaseImportance):
    """|gamma| of the group's norm layers, BatchNorm or GroupNorm (summed over coupled norms; Network
    Slimming's criterion)."""

    def group_importance(self, group: ChannelGroup) -> torch.Tensor:
        total, found = _zeros(group), False
        for s, role in zip(group.slices, group.slice_roles):
            if role in ('bn', 'gn') and s.name.endswith('.weight'):
                total += _reduce(s.param.detach().abs(), s.dim, s.index)
                found = True
        if not found:
            raise ValueError(f'bn_scale importance: group {group.name!r} has no affine BatchNorm or GroupNorm; '
                             'use l2 or taylor for this model')
        return total


def build_importance(cfg: Union[str, dict, BaseImportance, None]) -> BaseImportance:
    """An importance criterion from a name ('l2', 'taylor', 'bn_scale', or a registered type) or a config."""
    if cfg is None:
        cfg = 'l2'
    if isinstance(cfg, BaseImportance):
        return cfg
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    cfg['type'] = ALIASES.get(cfg.get('type'), cfg.get('type'))
    cls = TASK_UTILS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
    if cls is None or not (isinstance(cls, type) and issubclass(cls, BaseImportance)):
        known = sorted(ALIASES) + sorted(k for k, v in TASK_UTILS.module_dict.items()
                                         if isinstance(v, type) and issubclass(v, BaseImportance))
        raise ValueError(f'unknown importance {cfg["type"]!r}; known: {known}')
    return TASK_UTILS.build(cfg)
