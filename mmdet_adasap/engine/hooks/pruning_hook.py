"""``PruningHook``: soft channel pruning inside an mmengine training run.

Builds a :class:`~mmdet_adasap.pruning.ChannelPruner` on the runner's model before training, calls
``pruner.step(iteration)`` after every iteration (the pruner owns its schedule), keeps masked channels
(and their optimizer state) at zero, feeds gradient-based importance, stores masks and pruning state in
every checkpoint (one entry, :class:`.pruning_state.PruningState`) and restores them on resume / load_from, and optionally
exports the physically pruned detector after training.

``physical=True`` (default): once pruning is over (after the schedule's last step; :class:`AdaSAPHook`: at the
end of its pruning phase) the model is pruned physically in place (:mod:`mmdet_adasap.pruning.surgery`) and
training goes on at the smaller network's speed: optimizer state and ``EMAHook``'s averaged copy are sliced,
a DDP model is re-wrapped on every rank (after checking that the ranks agree on the channels), the SAM
wrapper rebuilds its perturbation plan, and a pruner is re-traced on the smaller model (its neuron groups
feed the fine-tune radius; it never prunes: :meth:`ChannelPruner.tracer`). Checkpoints taken after the switch
hold the pruned shapes and ``meta['adasap_channels']``; resuming from them re-shapes the dense model (and the EMA copy) before the
weights load. ``physical=False`` keeps the masks to the end (shapes fixed throughout).
Other hooks (the AdaSAP sharpness step) reach the pruner as ``runner.adasap_pruner``; after the switch that is
the pruner re-traced on the small model (nothing masked), and the dense-relative record (masks, cost ratio,
channel configuration) is the hook's ``physical_state`` (``state.physical``).
"""
import hashlib
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.distributed as dist
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, is_distributed
from mmengine.hooks import EMAHook, Hook
from mmengine.model import MMDistributedDataParallel, is_model_wrapper

from mmdet_adasap.pruning import ChannelPruner
from mmdet_adasap.models.pruned_detector import channel_record_of, mark_pruned
from mmdet_adasap.pruning.channel_groups import DEFAULT_INPUT_SHAPE
from mmdet_adasap.pruning.export import apply_channel_config, compose_records, save_pruned_checkpoint
from mmdet_adasap.pruning.latency_table import load_table
from mmdet_adasap.pruning.surgery import prune_physically, reshape_averaged
from .pruning_state import STATE_KEY, PruningState

#: optimizers whose per-parameter state is elementwise (shaped like the parameter) or scalar
ELEMENTWISE_OPTIMIZERS = ('SGD', 'Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam', 'RMSprop', 'Adagrad', 'Adadelta',
                          'ASGD', 'Rprop')


@HOOKS.register_module()
class PruningHook(Hook):
    """See :class:`ChannelPruner` for the pruning arguments.

    Args:
        latency_table: path of a JSON table from ``tools/build_latency_table.py`` (latency target).
        export: after training, write the physically pruned model to ``work_dir/<export>`` (None: don't).
        physical: prune physically in place once pruning is over and train on at the smaller network's speed
            (True, default), or keep the masks to the end of training (False).
        allow_random_init: prune even when the run neither loaded ``load_from`` nor resumed (False, default:
            refused, since channels ranked on random weights are noise; True for research on pruning at init).
    """
    priority = 'HIGH'  # before checkpoint / EMA hooks see the iteration's weights

    def __init__(self, target: dict = dict(type='flops', ratio=0.5), importance='l2',
                 schedule: dict = dict(type='one_shot'), round_to: int = 8, ranking: str = 'global',
                 input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                 ignored_layers: Sequence[str] = (), prunable: Optional[Sequence[str]] = None,
                 latency_table: Optional[str] = None, export: Optional[str] = 'pruned.pth',
                 physical: bool = True, allow_random_init: bool = False):
        for name, value in (('physical', physical), ('allow_random_init', allow_random_init)):
            if not isinstance(value, bool):
                raise TypeError(f'{type(self).__name__}: {name} must be True or False, got {value!r}')
        self.physical = physical
        self.allow_random_init = allow_random_init
        self.state = PruningState()
        self.kwargs = dict(target=target, importance=importance, schedule=schedule, round_to=round_to,
                           ranking=ranking, input_shape=tuple(input_shape),
                           ignored_layers=list(ignored_layers), prunable=prunable)
        self.latency_table = latency_table
        self.export = export
        self.pruner: Optional[ChannelPruner] = None
        self._grads = {}
        self._grad_hooks = []

    @property
    def physical_state(self) -> Optional[dict]:
        """The dense-relative record once the model is pruned physically (None before)."""
        return self.state.physical

    def _model(self, runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def check_weights_loaded(self, runner) -> None:
        """A pruning run's input is a trained detector: refuse one whose weights were neither loaded from
        ``load_from`` nor resumed (mmengine starts from random weights then, and says so in one log line only)."""
        if self.allow_random_init or getattr(runner, '_has_loaded', True):
            return
        raise ValueError(
            f'{type(self).__name__}: the detector\'s weights were neither loaded (load_from='
            f'{runner.cfg.get("load_from")!r}) nor resumed (no checkpoint to resume in {runner.work_dir!r}), so '
            'pruning would rank and remove the channels of a randomly initialised detector. Set load_from to the '
            'trained dense checkpoint (tools/train.py --resume falls back to it when the work dir holds no '
            'checkpoint; mmdet\'s own tools/train.py --resume clears it), or set allow_random_init=True on the '
            'hook to prune random weights on purpose')

    def before_train(self, runner) -> None:
        self.check_weights_loaded(runner)
        if self.physical:
            self._check_physical_support(runner)
        if self.physical_state is not None:  # resumed after the switch: the model is already the small one
            self._retrace(runner)
            runner.logger.info(f'PruningHook: resumed on the physically pruned model '
                               f'({self.physical_state["cost_name"]} ratio {self.physical_state["cost_ratio"]:.3f})')
            return
        table = load_table(self.latency_table) if self.latency_table else None
        self.pruner = ChannelPruner(self._model(runner), latency_table=table, **self.kwargs)
        runner.adasap_pruner = self.pruner
        runner.logger.info('PruningHook: ' + self.pruner.groups.report())
        self.pruner.masks.register_grad_hooks()
        if self.pruner.importance.needs_grad:
            self._watch_grads()
        if self.state.pruner is not None:
            self.pruner.load_state_dict(self.state.pruner)
            self.pruner.masks.clear_optimizer_state(runner.optim_wrapper.optimizer)
            self.state.pruner = None
            runner.logger.info(f'PruningHook: restored masks, cost ratio {self.pruner.cost_ratio():.3f}')

    def _watch_grads(self):
        """Keep a reference to each gradient as autograd makes it: mmengine zeroes ``.grad`` inside
        ``update_params``, before any after-iteration hook runs."""
        params = {s.param for g in self.pruner.groups for s in g.slices if s.param.requires_grad}
        for p in params:
            self._grad_hooks.append(p.register_hook(self._stash(p)))

    def _stash(self, p):
        def hook(grad):
            self._grads[p] = grad
        return hook

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.physical_state is not None:
            return  # pruning is over: the model is the small one
        pruner = self.pruner
        if pruner.importance.needs_grad and self._grads:
            pruner.importance.accumulate(pruner.groups, grads=self._grads)
            self._grads = {}
        kept = pruner.step(runner.iter)
        if kept is not None:
            pruner.masks.clear_optimizer_state(runner.optim_wrapper.optimizer)
            pruner.importance.reset()
            runner.logger.info(f'PruningHook: step {pruner.steps_done}/{pruner.schedule.steps} at iter '
                               f'{runner.iter}: {pruner.cost.name} ratio {pruner.cost_ratio():.3f} '
                               f'(target {pruner.schedule.ratio_at(runner.iter):.3f}), '
                               f'{sum(kept.values())} channels kept')
        elif pruner.masks.any_pruned():
            pruner.masks.apply()  # guard against anything that wrote masked entries (e.g. a custom step)
        last = self.switch_iteration()
        if self.physical and last is not None and last <= runner.iter < runner.max_iters - 1:
            self._go_physical(runner)

    # ------------------------------------------------------------------ the physical switch
    def switch_iteration(self) -> Optional[int]:
        """The iteration after which the model is pruned physically: the schedule's last step."""
        plan = self.pruner.schedule.plan()
        return plan[-1][0] if plan else None

    def _check_physical_support(self, runner) -> None:
        """Refuse, at the start of training, a model wrapper or optimizer the surgery cannot follow."""
        model = runner.model
        if is_model_wrapper(model) and not isinstance(model, (MMDistributedDataParallel,
                                                              torch.nn.parallel.DistributedDataParallel)):
            raise TypeError(f'{type(self).__name__}(physical=True) can re-wrap DistributedDataParallel only, '
                            f'not {type(model).__name__}; set physical=False to fine-tune with masks')
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        if optimizer is not None and type(optimizer).__name__ not in ELEMENTWISE_OPTIMIZERS:
            raise TypeError(f'{type(self).__name__}(physical=True) slices optimizer state it knows to be '
                            f'elementwise ({", ".join(ELEMENTWISE_OPTIMIZERS)}); {type(optimizer).__name__} is not '
                            'one of them: set physical=False to fine-tune with masks')

    def _go_physical(self, runner) -> None:
        pruner = self.pruner
        _check_ranks_agree(pruner.masks.masks)
        self._remove_grad_hooks()
        pruner.masks.remove_grad_hooks()
        state = dict(masks=pruner.masks.state_dict(), steps_done=pruner.steps_done, cost_name=pruner.cost.name,
                     cost_ratio=pruner.cost_ratio(), summary=pruner.summary(), iter=runner.iter)
        state['config'] = prune_physically(pruner.groups, pruner.masks.masks, runner.optim_wrapper.optimizer,
                                           averaged=_averaged_models(runner))
        _mark(self._model(runner), state['config'])
        self.state.physical = state
        _rewrap(runner)
        self._retrace(runner)
        runner.logger.info(f'PruningHook: pruned physically after iteration {runner.iter}: {len(state["config"])} '
                           f'layers re-shaped, {sum(p.numel() for p in self._model(runner).parameters())} '
                           'parameters; training goes on at the pruned network\'s speed')

    def _retrace(self, runner) -> None:
        """A pruner traced on the small model: its neuron groups (all kept) feed the sharpness step."""
        wrapper = runner.optim_wrapper
        if hasattr(wrapper, 'reset_plan'):
            wrapper.reset_plan()
        kw = self.kwargs
        self.pruner = ChannelPruner.tracer(self._model(runner), kw['input_shape'], importance=kw['importance'],
                                           ranking=kw['ranking'], ignored_layers=kw['ignored_layers'],
                                           prunable=kw['prunable'])
        self.pruner.steps_done = self.physical_state['steps_done']  # the pruning steps it stands for
        runner.adasap_pruner = self.pruner

    def _remove_grad_hooks(self) -> None:
        for h in self._grad_hooks:
            h.remove()
        self._grad_hooks, self._grads = [], {}

    # ------------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.pruner is None:
            return
        pruner = None if self.state.physical is not None else self.pruner.state_dict()
        checkpoint[STATE_KEY] = PruningState(pruner, self.state.physical, self.phase_record()).to_checkpoint()

    def phase_record(self) -> Optional[dict]:
        """What a subclass keeps of its phases in checkpoints (:class:`AdaSAPHook`); None here."""
        return None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = PruningState.from_checkpoint(checkpoint)
        if state is None:
            return
        if state.physical is not None:  # re-shape before mmengine loads the pruned weights
            config = state.physical['config']
            model = self._model(runner)
            apply_channel_config(model, config)
            _mark(model, config)
            for averaged in _averaged_models(runner):
                reshape_averaged(averaged, config)
            _rewrap(runner)
        elif self.pruner is not None:
            self.pruner.load_state_dict(state.pruner)
            state.pruner = None
        self.state = state

    def after_train(self, runner) -> None:
        self._remove_grad_hooks()
        if self.export and runner.rank == 0:
            if self.physical_state is not None:
                pruned, summary = self._model(runner), self.physical_state['summary']
                config = channel_record_of(pruned)
            else:
                (pruned, config), summary = self.pruner.export_with_config(), self.pruner.summary()
                config = compose_records(channel_record_of(self._model(runner)) or {}, config)
            path = save_pruned_checkpoint(osp.join(runner.work_dir, self.export), pruned, config,
                                          meta=dict(iter=runner.iter, epoch=runner.epoch,
                                                    dataset_meta=getattr(runner.train_dataloader.dataset,
                                                                         'metainfo', None)))
            runner.logger.info(f'PruningHook: exported the pruned detector to {path}\n' + summary)


def _mark(model, config) -> None:
    """Record the new shapes on the model (relative to its dense model, when it was pruned before), which
    ``ChannelRecordHook`` writes into every checkpoint from now on."""
    mark_pruned(model, compose_records(channel_record_of(model) or {}, config))


def _averaged_models(runner):
    return [h.ema_model for h in runner.hooks if isinstance(h, EMAHook) and getattr(h, 'ema_model', None)]


def _rewrap(runner) -> None:
    """DDP has bucketed the old shapes: wrap the re-shaped module again (the old reducer goes with the old
    wrapper)."""
    if is_model_wrapper(runner.model):
        runner.model = runner.wrap_model(runner.cfg.get('model_wrapper_cfg'), runner.model.module)


def _check_ranks_agree(masks) -> None:
    """Every rank must cut the same channels (they do if nothing rank-dependent entered the importance)."""
    if not is_distributed():
        return
    digest = hashlib.sha256(b''.join(m.to(torch.uint8).numpy().tobytes() for _, m in sorted(masks.items())))
    digests = all_gather_object(digest.hexdigest())
    if len(set(digests)) > 1:
        raise RuntimeError(f'physical pruning: the ranks disagree on the kept channels (mask digests {digests} on '
                           f'ranks 0..{dist.get_world_size() - 1}); refusing to re-shape diverging models')
