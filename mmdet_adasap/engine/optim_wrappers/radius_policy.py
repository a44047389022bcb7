"""Per-neuron perturbation radii for the sharpness-aware step.

A policy turns the pruner's :class:`~mmdet_adasap.structures.NeuronGroup` s (importance scores and masks) into
one radius per channel. :class:`SAMOptimWrapper` reads ``groups`` and ``channel_radii``: it rebuilds its
perturbation plan's structure only when ``structure_version`` changes (other groups, or masks changed by a
pruning step) and otherwise refreshes the plan's radius vector in place when ``version`` changes, so the AdaSAP
hook only has to call ``policy.update(groups)`` (or ``optim_wrapper.set_radius_policy(policy)`` once).
Parameters in no group get the wrapper's ``rho``.
"""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import TASK_UTILS

from mmdet_adasap.structures.neuron_groups import NeuronGroup


class RadiusPolicy:
    """Base class: subclasses implement :meth:`_radii`; masked (pruned) channels always get radius 0."""
    needs_groups = False  # True: meaningless without a pruner's neuron groups and scores

    def __init__(self) -> None:
        self.groups: List[NeuronGroup] = []
        self.channel_radii: List[torch.Tensor] = []
        self.version = 0  # bumped by every update (new radius values)
        self.structure_version = 0  # bumped when the groups or their masks change (the plan's structure)
        self._structure = None

    def update(self, groups: Optional[Sequence[NeuronGroup]] = None) -> None:
        """Recompute the radii from the groups' current scores and masks (``groups=None``: the last ones given)."""
        if groups is not None:
            self.groups = list(groups)
        for g in self.groups:
            if g.mask is not None and g.mask.numel() != g.num_channels:
                raise ValueError(f'neuron group {g.name!r}: mask has {g.mask.numel()} entries, '
                                 f'expected num_channels={g.num_channels}')
        radii = self._radii(self.groups) if self.groups else []
        self.channel_radii = [r.detach().float().masked_fill(~g.kept().to(r.device), 0.)
                              for g, r in zip(self.groups, radii)]
        structure = [(g.name, g.num_channels, id(g.slices), g.kept().clone()) for g in self.groups]
        if not self._same_structure(structure):
            self._structure = structure
            self.structure_version += 1
        self.version += 1

    def _same_structure(self, structure) -> bool:
        old = self._structure
        return old is not None and len(old) == len(structure) and all(
            a[:3] == b[:3] and torch.equal(a[3], b[3].to(a[3].device)) for a, b in zip(old, structure))

    def _radii(self, groups: List[NeuronGroup]) -> List[torch.Tensor]:
        raise NotImplementedError


@TASK_UTILS.register_module()
class UniformRadius(RadiusPolicy):
    """The same radius for every kept channel (AdaSAP's robustness fine-tuning phase, and plain ASAM)."""

    def __init__(self, rho: float) -> None:
        super().__init__()
        if not rho >= 0:
            raise ValueError(f'UniformRadius: rho must be >= 0, got {rho!r}')
        self.rho = float(rho)

    def _radii(self, groups):
        return [torch.full((g.num_channels,), self.rho) for g in groups]


@TASK_UTILS.register_module()
class AdaptiveRadius(RadiusPolicy):
    """AdaSAP's rule: rho_i = rho_max - (s_i - s_min) / (s_max - s_min) * (rho_max - rho_min).

    The least important kept neuron gets ``rho_max`` (pushed hardest into a flat region because it is about
    to be removed), the most important ``rho_min``; all ``rho_max`` if every score is equal.

    Args:
        rho_min, rho_max: radius range.
        scope: ``'global'`` takes s_min/s_max over all kept channels of all groups (as a global pruner or the
            knapsack ranks); ``'per_group'`` takes them within each group (as ``ranking='per_group'``).

    Scores are used as given: the pruner's importance normalises them per group (its ``normalize`` option,
    :mod:`mmdet_adasap.pruning.importance`), the one place that is done.
    """
    needs_groups = True
    SCOPES = ('global', 'per_group')

    def __init__(self, rho_min: float = 0.01, rho_max: float = 2.0, scope: str = 'global') -> None:
        super().__init__()
        if not rho_min >= 0:
            raise ValueError(f'AdaptiveRadius: rho_min must be >= 0, got {rho_min!r}')
        if not rho_max >= rho_min:
            raise ValueError(f'AdaptiveRadius: rho_min ({rho_min!r}) must not exceed rho_max ({rho_max!r})')
        if scope not in self.SCOPES:
            raise ValueError(f'AdaptiveRadius: unknown scope {scope!r}, expected one of {self.SCOPES}')
        self.rho_min, self.rho_max = float(rho_min), float(rho_max)
        self.scope = scope

    def _scores(self, g: NeuronGroup) -> torch.Tensor:
        if g.importance is None:
            raise ValueError(f'AdaptiveRadius: neuron group {g.name!r} has no importance scores '
                             '(the pruner must fill NeuronGroup.importance)')
        s = g.importance.detach().double().flatten()  # on the scores' device: refreshed every iteration
        if s.numel() != g.num_channels:
            raise ValueError(f'AdaptiveRadius: neuron group {g.name!r} has {s.numel()} scores for '
                             f'{g.num_channels} channels')
        kept = g.kept().to(s.device)
        if not torch.isfinite(s[kept]).all():
            raise ValueError(f'AdaptiveRadius: neuron group {g.name!r} has non-finite importance scores')
        return s

    def _rule(self, s: torch.Tensor, s_min, s_max) -> torch.Tensor:
        if not s_max > s_min:
            return torch.full_like(s, self.rho_max)
        return self.rho_max - (s - s_min) / (s_max - s_min) * (self.rho_max - self.rho_min)

    def _radii(self, groups):
        scores = [self._scores(g) for g in groups]
        kept = [g.kept().to(s.device) for g, s in zip(groups, scores)]
        if self.scope == 'global':
            alive = torch.cat([s[k] for s, k in zip(scores, kept)])
            if alive.numel() == 0:
                return [torch.zeros_like(s) for s in scores]
            lo, hi = alive.min(), alive.max()
            return [self._rule(s, lo, hi) for s in scores]
        out = []
        for s, k in zip(scores, kept):
            out.append(self._rule(s, s[k].min(), s[k].max()) if k.any() else torch.zeros_like(s))
        return out


def build_radius_policy(cfg) -> RadiusPolicy:
    """A policy object, or one built from a config dict through mmdet's ``TASK_UTILS`` registry."""
    if isinstance(cfg, RadiusPolicy):
        return cfg
    if isinstance(cfg, dict):
        policy = TASK_UTILS.build(cfg)
        if not isinstance(policy, RadiusPolicy):
            raise TypeError(f'radius_policy type {cfg.get("type")!r} is not a RadiusPolicy')
        return policy
    raise TypeError(f'radius_policy must be a RadiusPolicy or a config dict, got {type(cfg).__name__}')
