"""The channel pruner: groups + importance + target + schedule + masks, and the hand-off to AdaSAP.

``ChannelPruner`` is plain PyTorch (usable from scripts and tests) and owns its schedule: ``step(iteration)``
prunes when a step is due (HALP's ``prune_step``), so the mmengine hooks
(:class:`~mmdet_adasap.engine.hooks.PruningHook`, ``AdaSAPHook``) only call it. The sharpness step reads
:meth:`ChannelPruner.neuron_groups` every iteration: the ParamSlices are built once at trace time, only
importance and masks are refreshed.
"""
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmdet_adasap.structures.neuron_groups import NeuronGroup
from ..utils.checks import check_int
from .channel_groups import DEFAULT_INPUT_SHAPE, ChannelGroups
from .export import channel_config, export_pruned
from .follow import build_followed_groups
from .importance import BaseImportance, build_importance
from .masks import ChannelMasks
from .schedule import PruningSchedule, build_schedule
from .targets import LATENCY_KEYS, CostModel, build_cost, check_cost_type, check_ranking, check_ratio, solve

#: the ChannelPruner options beside target / importance / schedule that decide which channel counts a prune can
#: reach (what a reachability check must pass on from a config's pruning options)
REACH_KEYS = ('round_to', 'ranking', 'ignored_layers', 'prunable')


class ChannelPruner:
    """Structured channel pruning of an mmdet detector.

    Args:
        model: the detector (pruned in place by masks; :meth:`export` returns a smaller copy).
        input_shape: (N, C, H, W) used to trace the model and count FLOPs / measure latency.
        target: ``dict(type='flops'|'params'|'latency', ratio=r)``: keep a fraction ``r`` of the dense cost; a
            latency target may add ``batch`` / ``device`` / ``threads``, which its table must have been
            measured with.
        importance: 'l2' (default), 'taylor', 'bn_scale', a registered type name, or a config dict (its
            ``normalize`` option sets how scores are made comparable across groups).
        schedule: ``dict(type='one_shot')`` or ``dict(type='exponential', steps=S, interval=N, start=I)``.
        round_to: kept channel counts are multiples of this (or the full group).
        ranking: 'global' (lowest normalised importance out first, cost-blind), 'per_group' (the same fraction
            in every group) or 'knapsack' (HALP: most importance kept per cost; see :mod:`.targets`).
        ignored_layers / prunable: module names (fnmatch patterns) to leave alone / to restrict pruning to.
        latency_table: lookup table for a latency target (:func:`.latency_measure.measure_latency_table`).
        forward_fn: ``forward_fn(model, x)`` runs the part of the detector that is traced and pruned on an image
            batch ``x`` and returns its output tensors (what feeds them is pruned, they keep their channels).
            Default (:func:`~.channel_groups.default_forward`): ``model.extract_feat(x)`` (backbone + neck)
            for two-stage and DETR-family detectors, ``model._forward(x)`` otherwise. A forward that fails is
            refused as one :class:`~.channel_groups.UntraceableForward` (a ``ValueError``) naming where.
        prunes: False for a tracer (:meth:`tracer`): groups, importance and neuron groups only; no target, no
            schedule, and it never prunes.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                 target: Optional[dict] = None, importance: Union[str, dict, BaseImportance, None] = 'l2',
                 schedule: Optional[dict] = None, round_to: int = 8, ranking: str = 'global',
                 ignored_layers: Sequence[str] = (),
                 prunable: Optional[Sequence[str]] = None, latency_table: Optional[dict] = None,
                 forward_fn=None, prunes: bool = True):
        self.prunes = prunes
        target = dict(target or dict(type='flops', ratio=0.5))
        self.target_type = check_cost_type(target.get('type', 'flops')) if prunes else None
        self.schedule: Optional[PruningSchedule] = build_schedule(schedule or dict(type='one_shot'),
                                                                  target.get('ratio')) if prunes else None
        self.ratio = self.schedule.ratio if prunes else None  # checked there, once
        self.importance: BaseImportance = build_importance(importance)
        self.round_to, self.ranking = check_int(round_to, 'round_to'), check_ranking(ranking)
        if self.ranking == 'knapsack' and self.importance.normalize is not None:
            print_log(f'ChannelPruner: ranking=\'knapsack\' weighs importance against cost across groups, but '
                      f'{type(self.importance).__name__}(normalize={self.importance.normalize!r}) makes every '
                      'group equally valuable on average, so the knapsack cuts the layers cheapest to remove per '
                      'unit cost (often the high-resolution stem) hardest. HALP ranks by raw first-order Taylor: '
                      'importance=dict(type=\'taylor\', normalize=None)', logger='current', level=logging.WARNING)
        self.model = model
        self.groups: ChannelGroups = build_followed_groups(model, input_shape, forward_fn, ignored_layers,
                                                           prunable)
        if len(self.groups) == 0:
            raise ValueError(f'no prunable channel groups found in {type(model).__name__}:\n'
                             + self.groups.report())
        self.cost: Optional[CostModel] = self._build_cost(target, latency_table) if prunes else None
        self.masks = ChannelMasks(self.groups)
        self.steps_done = 0
        self._neuron_groups = self.groups.neuron_groups()
        self._last_importance: Dict[str, torch.Tensor] = {}

    @classmethod
    def tracer(cls, model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, importance='l2',
               ranking: str = 'global', ignored_layers: Sequence[str] = (), prunable: Optional[Sequence[str]] = None,
               forward_fn=None) -> 'ChannelPruner':
        """A pruner that never prunes: the channel groups, importance and neuron groups of ``model`` (e.g. a
        model already pruned physically, for the sharpness step), with no target and no schedule."""
        return cls(model, input_shape, importance=importance, ranking=ranking, ignored_layers=ignored_layers,
                   prunable=prunable, forward_fn=forward_fn, prunes=False)

    def _build_cost(self, target: dict, latency_table: Optional[dict]) -> CostModel:
        expect = {k: target[k] for k in LATENCY_KEYS if k in target}
        unknown = set(target) - {'type', 'ratio', *LATENCY_KEYS}
        if unknown or (expect and self.target_type != 'latency'):
            raise ValueError(f'unknown target option(s) {sorted(unknown or expect)} for a {self.target_type} '
                             f'target; a target is dict(type, ratio) (latency also {LATENCY_KEYS})')
        return build_cost(self.target_type, self.groups, latency_table, expect)

    @property
    def last_importance(self) -> Dict[str, torch.Tensor]:
        """The scores of the last pruning step / refresh (what :meth:`neuron_groups` hands on without a
        refresh)."""
        return self._last_importance

    def restore_importance(self, scores: Dict[str, torch.Tensor]) -> None:
        """Hand on ``scores`` (e.g. saved in a checkpoint) until the next refresh, instead of recomputing."""
        missing = {g.name for g in self.groups} - set(scores)
        if missing:
            raise ValueError(f'restore_importance: no scores for group(s) {sorted(missing)[:3]}')
        self._last_importance = dict(scores)

    # ------------------------------------------------------------------ pruning
    def compute_importance(self) -> Dict[str, torch.Tensor]:
        """Current scores, normalised over each group's kept channels (the importance's ``normalize``)."""
        self._last_importance = self.importance(self.groups, self.masks.masks)
        return self._last_importance

    def step(self, iteration: int) -> Optional[Dict[str, int]]:
        """Prune if the schedule has a step at ``iteration`` (HALP's ``prune_step``): channels kept per group,
        or None when no step is due. The schedule's ratios were checked when it was built."""
        ratio = self.schedule.ratio_at(iteration) if self.prunes else None
        return None if ratio is None else self._prune(ratio, self.ratio)

    def prune_to(self, ratio: float, floor: Optional[float] = None) -> Dict[str, int]:
        """Mask channels until the cost is at most ``ratio`` x dense (outside any schedule); ``floor``: the
        final ratio of the steps this one is part of (default ``ratio``; see :func:`.targets.solve`)."""
        ratio = check_ratio(ratio, 'ratio')
        return self._prune(ratio, ratio if floor is None else check_ratio(floor, 'floor'))

    def prune_one_shot(self) -> Dict[str, int]:
        return self._prune(self.ratio, self.ratio)

    def _prune(self, ratio: float, floor: float) -> Dict[str, int]:
        if not self.prunes:
            raise RuntimeError('this ChannelPruner is a tracer (ChannelPruner.tracer): it has no target and never '
                               'prunes; build one with a target to prune')
        scores = self.compute_importance()
        masks = solve(self.groups, scores, self.cost, ratio * self.cost.dense, self.round_to, self.ranking,
                      self.masks.masks, floor * self.cost.dense)
        self.masks.set(masks)
        self.masks.apply()
        self.steps_done += 1
        return self.masks.num_kept()

    def current_cost(self) -> float:
        return self.cost(self.masks.num_kept())

    def cost_ratio(self) -> float:
        return self.current_cost() / self.cost.dense

    # ------------------------------------------------------------------ AdaSAP hand-off
    def neuron_groups(self, refresh_importance: bool = True) -> List[NeuronGroup]:
        """Per group: its ParamSlices (built once), current importance and keep-mask (True = kept).

        ``refresh_importance=False`` reuses the scores of the last pruning step / refresh (cheapest).
        Taylor importance before any gradient was accumulated falls back to L2 for the radius rule.
        """
        if refresh_importance or not self._last_importance:
            try:
                self.compute_importance()
            except RuntimeError:
                fallback = build_importance(dict(type='l2', normalize=self.importance.normalize))
                self._last_importance = fallback(self.groups, self.masks.masks)
        for ng in self._neuron_groups:
            ng.importance = self._last_importance[ng.name]
            ng.mask = self.masks.masks[ng.name]
        return self._neuron_groups

    # ------------------------------------------------------------------ export & state
    def export(self) -> nn.Module:
        """A physically smaller copy of the model (the masked model is unchanged)."""
        return export_pruned(self.groups, self.masks.masks)

    def export_with_config(self):
        pruned = self.export()
        return pruned, channel_config(self.model, pruned)

    def state_dict(self) -> dict:
        return dict(masks=self.masks.state_dict(), steps_done=self.steps_done,
                    importance=self.importance.state_dict(), target=dict(type=self.target_type, ratio=self.ratio))

    def load_state_dict(self, state: dict) -> None:
        self.masks.load_state_dict(state['masks'])
        self.masks.apply()
        self.steps_done = int(state.get('steps_done', 0))
        self.importance.load_state_dict(state.get('importance', {}))

    def summary(self) -> str:
        kept = self.masks.num_kept()
        lines = [self.groups.report(),
                 f'{self.cost.name}: {self.current_cost():.4g} / dense {self.cost.dense:.4g} '
                 f'({self.cost_ratio():.3f}; target {self.ratio})']
        for g in self.groups:
            lines.append(f'  {g.name:<45} {kept[g.name]:5d} / {g.size:5d}')
        return '\n'.join(lines)
