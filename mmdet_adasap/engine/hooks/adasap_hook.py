"""``AdaSAPHook``: the paper's three phases in one mmengine training run.

1. ``warmup``: sharpness-aware steps whose per-channel radius follows the pruner's current importance
   (:class:`AdaptiveRadius`: least important -> ``rho_max``, most important -> ``rho_min``);
2. ``pruning``: the pruning schedule's steps, spread over the phase, while the adaptive radius keeps following
   the shrinking network (pruned channels get no perturbation);
3. ``finetune``: uniform ASAM on the pruned network;
then the physically smaller detector is exported. It is a :class:`PruningHook` (masks, checkpoints, export)
that also steers :class:`SAMOptimWrapper` phase by phase, so the same hook with every ``sharpness=None`` is the
plain magnitude-pruning baseline and with a uniform warm-up radius the SAM/ASAM ablation.
"""
import copy
import warnings
from typing import Dict, Optional, Sequence

import torch
from mmdet.registry import HOOKS
from mmengine.optim import OptimWrapperDict
from mmengine.runner import IterBasedTrainLoop

from mmdet_adasap.apis import find_resize_shape
from mmdet_adasap.engine.optim_wrappers import SAMOptimWrapper, UniformRadius, build_radius_policy
from mmdet_adasap.engine.optim_wrappers.sam_optim_wrapper import check_adaptive, check_rho
from mmdet_adasap.pruning.channel_groups import DEFAULT_INPUT_SHAPE
from mmdet_adasap.pruning.targets import build_cost, check_ratio
from mmdet_adasap.utils.checks import check_int
from .pruning_hook import PruningHook

PHASES = ('warmup', 'pruning', 'finetune')
PRUNER_KEYS = ('target', 'importance', 'schedule', 'round_to', 'ranking', 'ignored_layers', 'prunable')
SHARPNESS_KEYS = ('radius', 'rho', 'adaptive', 'refresh_interval')


def _check_sharpness(cfg, phase: str) -> Optional[dict]:
    """A phase's sharpness step as a dict, or None for a plain optimizer step."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(f'AdaSAPHook: {phase}.sharpness must be a dict or None, got {cfg!r}')
    unknown = set(cfg) - set(SHARPNESS_KEYS)
    if unknown:
        raise ValueError(f'AdaSAPHook: unknown {phase}.sharpness option(s) {sorted(unknown)}; '
                         f'expected {SHARPNESS_KEYS}')
    out = {**dict(radius=None, rho=None, adaptive=True, refresh_interval=1), **cfg}
    if out['radius'] is None and out['rho'] is None:
        raise ValueError(f'AdaSAPHook: {phase}.sharpness needs a radius policy (radius=dict(type=...)) or a '
                         'uniform radius (rho=...)')
    if out['rho'] is not None:  # the wrapper's own checks, now rather than when the phase starts
        check_rho(f'AdaSAPHook: {phase}.sharpness', out['rho'])
    check_adaptive(f'AdaSAPHook: {phase}.sharpness', out['adaptive'])
    check_int(out['refresh_interval'], f'AdaSAPHook: {phase}.sharpness.refresh_interval')
    if out['radius'] is not None:
        build_radius_policy(out['radius'])  # fail on a bad policy now, not at the phase start
    return out


def _end(cfg: dict, phase: str):
    end = cfg.get('end')
    if isinstance(end, bool) or not isinstance(end, int) or end < 0:
        raise ValueError(f'AdaSAPHook: {phase}.end must be a non-negative int (epochs or iterations, see '
                         f'by_epoch), got {end!r}')
    return end


@HOOKS.register_module()
class AdaSAPHook(PruningHook):
    """Adaptive warm-up -> pruning -> uniform-ASAM fine-tune, then export.

    Args:
        warmup: ``dict(end=E1, sharpness=...)``: the warm-up phase covers [0, E1).
        pruning: ``dict(end=E2, sharpness='warmup', target=..., importance=..., schedule=..., round_to=...,
            ranking=..., ignored_layers=..., prunable=...)``: covers [E1, E2); the pruner
            arguments are :class:`ChannelPruner`'s. The schedule's steps are placed by the hook: a one-shot step
            after the phase's first iteration; ``dict(type='exponential', steps=S)`` every ``interval``
            iterations from there (default: the phase length / S, so every step is followed by training).
            ``sharpness='warmup'`` (default) continues the warm-up's step, as in the paper.
        finetune: ``dict(sharpness=...)``: covers [E2, max_epochs / max_iters).
        by_epoch: phase ends are epochs (default) or iterations.
        input_shape: trace input (N, C, H, W); None: the test pipeline's ``Resize`` scale.
        latency_table, export: as :class:`PruningHook`.
        physical: prune physically at the end of the pruning phase, so that the fine-tune phase runs at the
            pruned network's speed (default), or keep the masks to the end (False); see :class:`PruningHook`.
        allow_random_init: as :class:`PruningHook` (default False: a run that neither loaded ``load_from`` nor
            resumed is refused).

    A ``sharpness`` is None (a plain optimizer step) or ``dict(radius=None | policy config, rho=r,
    adaptive=True, refresh_interval=1)``: ``radius=dict(type='AdaptiveRadius', rho_min=0.01, rho_max=2.0)``
    (whose ``scope`` defaults to the pruner's: 'per_group' for ``ranking='per_group'``, else 'global') gives
    per-channel radii from the pruner's importance (normalised by the importance's ``normalize`` option),
    recomputed every ``refresh_interval`` iterations and after
    every pruning step; ``rho`` is then the radius of parameters no prunable group covers (stem, heads), and
    without a policy the uniform radius. ``adaptive``: ASAM (True) or SAM. Pruned channels are never perturbed.
    """

    def __init__(self, warmup: dict, pruning: dict,
                 finetune: dict = dict(sharpness=dict(rho=0.5, adaptive=True)), by_epoch: bool = True,
                 input_shape: Optional[Sequence[int]] = None, latency_table: Optional[str] = None,
                 export: Optional[str] = 'pruned.pth', physical: bool = True, allow_random_init: bool = False):
        for name, cfg in (('warmup', warmup), ('pruning', pruning), ('finetune', finetune)):
            if not isinstance(cfg, dict):
                raise TypeError(f'AdaSAPHook: {name} must be a dict, got {cfg!r}')
        allowed = dict(warmup={'end', 'sharpness'}, pruning={'end', 'sharpness', *PRUNER_KEYS},
                       finetune={'sharpness'})
        for name, cfg in (('warmup', warmup), ('pruning', pruning), ('finetune', finetune)):
            unknown = set(cfg) - allowed[name]
            if unknown:
                raise ValueError(f'AdaSAPHook: unknown {name} option(s) {sorted(unknown)}; '
                                 f'expected {sorted(allowed[name])}')
        self.ends = (_end(warmup, 'warmup'), _end(pruning, 'pruning'))
        if self.ends[0] >= self.ends[1]:
            raise ValueError(f'AdaSAPHook: phase ends out of order: warmup.end={self.ends[0]} must be smaller '
                             f'than pruning.end={self.ends[1]} (the pruning phase needs at least one '
                             f'{"epoch" if by_epoch else "iteration"})')
        warm = _check_sharpness(warmup.get('sharpness'), 'warmup')
        prune_sharp = pruning.get('sharpness', 'warmup')
        self.sharpness = dict(warmup=warm,
                              pruning=warm if prune_sharp == 'warmup' else _check_sharpness(prune_sharp, 'pruning'),
                              finetune=_check_sharpness(finetune.get('sharpness'), 'finetune'))
        pruner_cfg = {k: copy.deepcopy(v) for k, v in pruning.items() if k in PRUNER_KEYS}
        check_ratio(pruner_cfg.get('target', {}).get('ratio', 0.5), 'AdaSAPHook: pruning.target ratio')
        self.schedule_cfg = dict(pruner_cfg.pop('schedule', None) or dict(type='one_shot'))
        if 'start' in self.schedule_cfg:
            raise ValueError('AdaSAPHook places the pruning steps itself (from warmup.end); remove schedule.start '
                             'and move the phase ends instead')
        super().__init__(input_shape=input_shape or DEFAULT_INPUT_SHAPE,  # set from the config in before_train
                         latency_table=latency_table, export=export, physical=physical,
                         allow_random_init=allow_random_init, **pruner_cfg)
        self.by_epoch = by_epoch
        self._auto_input_shape = input_shape is None
        self.bounds = None  # first iteration of pruning, of finetune
        self.phase: Optional[str] = None
        self.policy = None
        self._radius_stale = True
        self._costs = {}

    # ------------------------------------------------------------------ setup and checks
    def phase_at(self, iteration: int) -> str:
        if iteration < self.bounds[0]:
            return 'warmup'
        return 'pruning' if iteration < self.bounds[1] else 'finetune'

    def _iteration_bounds(self, runner):
        loop = runner.train_loop
        if self.by_epoch:
            if isinstance(loop, IterBasedTrainLoop) or not hasattr(loop, 'max_epochs'):  # it has max_epochs=1
                raise ValueError(f'AdaSAPHook(by_epoch=True) needs an epoch-based train loop, got '
                                 f'{type(loop).__name__}; give the phase ends in iterations with by_epoch=False')
            limit, per = loop.max_epochs, len(runner.train_dataloader)
        else:
            limit, per = runner.max_iters, 1
        unit = 'max_epochs' if self.by_epoch else 'max_iters'
        if self.ends[1] > limit:
            raise ValueError(f'AdaSAPHook: pruning.end={self.ends[1]} lies beyond the end of training '
                             f'({unit}={limit}); the fine-tune phase would never start')
        if self.ends[1] == limit:
            warnings.warn(f'AdaSAPHook: pruning.end equals {unit}={limit}: there is no fine-tune phase')
        if self.ends[0] == 0:
            warnings.warn('AdaSAPHook: warmup.end=0: no adaptive warm-up, pruning starts at once')
        return self.ends[0] * per, self.ends[1] * per

    def _place_schedule(self):
        begin, end = self.bounds
        cfg = dict(self.schedule_cfg, start=begin)
        if cfg.get('type', 'one_shot') == 'exponential':
            steps = cfg.get('steps', 1)
            if isinstance(steps, int) and steps >= 1:
                cfg.setdefault('interval', max(1, (end - begin) // steps))
                last = begin + (steps - 1) * cfg['interval']
                if last >= end:
                    raise ValueError(f'AdaSAPHook: {steps} pruning steps every {cfg["interval"]} iterations do '
                                     f'not fit in the pruning phase (iterations {begin}..{end - 1}); lengthen it '
                                     'or use fewer steps / a shorter interval')
        self.kwargs['schedule'] = cfg

    def _check_optim_wrapper(self, runner):
        wrapper = runner.optim_wrapper
        needs = [p for p in PHASES if self.sharpness[p] is not None]
        if isinstance(wrapper, OptimWrapperDict):
            raise TypeError('AdaSAPHook supports one optim wrapper (got an OptimWrapperDict)')
        if needs and not isinstance(wrapper, SAMOptimWrapper):
            raise TypeError(f'AdaSAPHook: phase(s) {needs} take a sharpness-aware step, but the optim wrapper is '
                            f'{type(wrapper).__name__}; set optim_wrapper=dict(type=\'SAMOptimWrapper\', ...) '
                            '(or sharpness=None in every phase for plain pruning)')
        if not needs and isinstance(wrapper, SAMOptimWrapper):
            warnings.warn('AdaSAPHook: no phase has a sharpness setting, so the SAMOptimWrapper takes plain '
                          'steps throughout; use the plain OptimWrapper for the magnitude-pruning baseline')

    def before_train(self, runner) -> None:
        others = [h for h in runner.hooks if isinstance(h, PruningHook) and h is not self]
        if others:
            raise ValueError(f'AdaSAPHook already prunes; remove the other pruning hook(s) '
                             f'{[type(h).__name__ for h in others]} from the config')
        self._check_optim_wrapper(runner)
        self.bounds = self._iteration_bounds(runner)
        self._place_schedule()
        if self._auto_input_shape:
            shape = find_resize_shape(runner.cfg)
            if shape is None:
                raise ValueError('AdaSAPHook: no Resize scale found in the test pipeline to trace the model at; '
                                 'set input_shape=(1, 3, H, W)')
            self.kwargs['input_shape'] = shape
        restored = self.state.pruner is not None
        resumed = self.state.continues_at(runner.iter)  # else a new run from the checkpoint's weights (load_from)
        super().before_train(runner)
        pruner = self.pruner
        self._costs = {kind: build_cost(kind, pruner.groups) for kind in ('flops', 'params')}
        self._cost_stats = (None, {})
        if restored and not resumed and pruner.cost_ratio() <= pruner.ratio:
            warnings.warn(f'AdaSAPHook: the loaded checkpoint is already pruned to {pruner.cost_ratio():.3f} of '
                          f'the dense {pruner.cost.name}, which meets the target {pruner.ratio}: the pruning phase '
                          'will remove nothing')
        state, self.state.phases = (self.state.phases if resumed else None), None
        if state is not None:
            if tuple(state['bounds']) != tuple(self.bounds):
                warnings.warn(f'AdaSAPHook: the checkpoint was taken with phase bounds {state["bounds"]} '
                              f'(iterations), the config now gives {self.bounds}')
            if state.get('importance') and not state.get('radius_stale', True):
                pruner.restore_importance(state['importance'])  # the radii in force when it was saved
            else:
                state = None
        steps = 'done' if pruner.schedule is None else f'at {[it for it, _ in pruner.schedule.plan()]}'
        runner.logger.info(
            f'AdaSAPHook: warmup iterations [0, {self.bounds[0]}), pruning [{self.bounds[0]}, {self.bounds[1]}) '
            f'with steps {steps}, finetune [{self.bounds[1]}, {runner.max_iters})')
        self._enter(runner, self.phase_at(runner.iter), resumed_with_radii=state is not None)

    # ------------------------------------------------------------------ phases
    def _enter(self, runner, phase: str, resumed_with_radii: bool = False) -> None:
        self.phase = phase
        sharp = self.sharpness[phase]
        wrapper = runner.optim_wrapper
        self.policy, radius = None, None
        if sharp is None:
            if isinstance(wrapper, SAMOptimWrapper):
                wrapper.configure_sharpness(enabled=False)
        else:
            radius = copy.deepcopy(sharp['radius'])
            if radius is None:
                self.policy = UniformRadius(sharp['rho'])
            else:
                if radius.get('type') == 'AdaptiveRadius':  # rank in the pruner's scope (scores come normalised)
                    radius.setdefault('scope', 'per_group' if self.pruner.ranking == 'per_group' else 'global')
                self.policy = build_radius_policy(radius)
            wrapper.configure_sharpness(enabled=True, rho=sharp['rho'], adaptive=sharp['adaptive'],
                                        radius_policy=self.policy)
        self._radius_stale = not resumed_with_radii
        if resumed_with_radii and self.policy is not None:
            self.policy.update(self.pruner.neuron_groups(refresh_importance=False))
        if sharp is None:
            how = 'plain optimizer step'
        else:
            kind = 'ASAM' if sharp['adaptive'] else 'SAM'
            how = f'uniform {kind}, rho={sharp["rho"]}' if radius is None else \
                f'{kind}, radius {dict(radius)} refreshed every {sharp["refresh_interval"]} iteration(s), ' \
                f'rho={wrapper.rho} outside prunable groups'
        runner.logger.info(f'AdaSAPHook: phase {PHASES.index(phase) + 1}/3 {phase!r} from iteration {runner.iter} '
                           f'(epoch {runner.epoch}): {how}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        it = runner.iter
        phase = self.phase_at(it)
        if phase != self.phase:
            self._enter(runner, phase)
        if self.policy is None:
            return
        sharp = self.sharpness[phase]
        begin = (0,) + self.bounds
        on_schedule = (it - begin[PHASES.index(phase)]) % sharp['refresh_interval'] == 0
        if self.policy.needs_groups and on_schedule:
            self.policy.update(self.pruner.neuron_groups(refresh_importance=True))
        elif self._radius_stale:
            self.policy.update(self.pruner.neuron_groups(refresh_importance=self.policy.needs_groups))
        self._radius_stale = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        steps = self.pruner.steps_done
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self.pruner.steps_done != steps:
            self._radius_stale = True  # pruned channels lose their radius before the next step
        for key, value in self.statistics().items():
            runner.message_hub.update_scalar(f'train/{key}', value)

    def statistics(self) -> Dict[str, float]:
        """Phase index, kept fraction of prunable channels, FLOPs / params ratio, radius min/mean/max."""
        cost = self.physical_state['stats'] if self.physical_state is not None else self._cost_statistics()
        stats = dict(adasap_phase=float(PHASES.index(self.phase)), **cost)
        if self.policy is not None and self.policy.channel_radii:
            radii = torch.cat([r[g.kept().to(r.device)] for g, r in zip(self.policy.groups,
                                                                        self.policy.channel_radii)])
            if radii.numel():
                stats.update(rho_min=float(radii.min()), rho_mean=float(radii.mean()), rho_max=float(radii.max()))
        return stats

    def _cost_statistics(self) -> Dict[str, float]:
        if self._cost_stats[0] != self.pruner.steps_done:  # masks change only at pruning steps (or a load)
            kept = self.pruner.masks.num_kept()
            self._cost_stats = (self.pruner.steps_done, dict(
                kept_channels=sum(kept.values()) / sum(g.size for g in self.pruner.groups),
                flops_ratio=self._costs['flops'](kept) / self._costs['flops'].dense,
                params_ratio=self._costs['params'](kept) / self._costs['params'].dense))
        return self._cost_stats[1]

    # ------------------------------------------------------------------ the physical switch
    def switch_iteration(self) -> int:
        """The last iteration of the pruning phase: the fine-tune phase runs on the physically pruned model."""
        return self.bounds[1] - 1

    def _go_physical(self, runner) -> None:
        stats = dict(self._cost_statistics())  # relative to the dense model, kept for the log from now on
        super()._go_physical(runner)
        self.physical_state['stats'] = stats

    # ------------------------------------------------------------------ checkpoints
    def phase_record(self) -> dict:
        return dict(phase=self.phase, bounds=list(self.bounds), radius_stale=self._radius_stale,
                    importance={k: v.detach().cpu().clone() for k, v in self.pruner.last_importance.items()})
