"""``PruningHook``: soft channel pruning inside an mmengine training run.

Builds a :class:`~mmdet_adasap.pruning.ChannelPruner` on the runner's model before training, calls
``pruner.step(iteration)`` after every iteration (the pruner owns its schedule), keeps masked channels
(and their optimizer state) at zero, feeds gradient-based importance, stores masks and pruning state in
every checkpoint (``checkpoint['adasap_pruning']``) and restores them on resume / load_from, and optionally exports the physically pruned detector after training.
Other hooks (the AdaSAP sharpness step) reach the pruner as ``runner.adasap_pruner``.
"""
import os.path as osp
from typing import Optional, Sequence

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet_adasap.pruning import ChannelPruner
from mmdet_adasap.pruning.export import save_pruned_checkpoint
from mmdet_adasap.pruning.latency import load_table

STATE_KEY = 'adasap_pruning'


@HOOKS.register_module()
class PruningHook(Hook):
    """See :class:`ChannelPruner` for the pruning arguments.

    Args:
        latency_table: path of a JSON table from ``tools/build_latency_table.py`` (latency target).
        export: after training, write the physically pruned model to ``work_dir/<export>`` (None: don't).
    """
    priority = 'HIGH'  # before checkpoint / EMA hooks see the iteration's weights

    def __init__(self, target: dict = dict(type='flops', ratio=0.5), importance='l2',
                 schedule: dict = dict(type='one_shot'), round_to: int = 8, ranking: str = 'global',
                 input_shape: Sequence[int] = (1, 3, 300, 300),
                 ignored_layers: Sequence[str] = (), prunable: Optional[Sequence[str]] = None,
                 latency_table: Optional[str] = None, export: Optional[str] = 'pruned.pth'):
        self.kwargs = dict(target=target, importance=importance, schedule=schedule, round_to=round_to,
                           ranking=ranking, input_shape=tuple(input_shape),
                           ignored_layers=list(ignored_layers), prunable=prunable)
        self.latency_table = latency_table
        self.export = export
        self.pruner: Optional[ChannelPruner] = None
        self._pending_state = None
        self._grads = {}
        self._grad_hooks = []

    def _model(self, runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        table = load_table(self.latency_table) if self.latency_table else None
        self.pruner = ChannelPruner(self._model(runner), latency_table=table, **self.kwargs)
        runner.adasap_pruner = self.pruner
        runner.logger.info('PruningHook: ' + self.pruner.groups.report())
        self.pruner.masks.register_grad_hooks()
        if self.pruner.importance.needs_grad:
            self._watch_grads()
        if self._pending_state is not None:
            self.pruner.load_state_dict(self._pending_state)
            self.pruner.masks.clear_optimizer_state(runner.optim_wrapper.optimizer)
            self._pending_state = None
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

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.pruner is not None:
            checkpoint[STATE_KEY] = self.pruner.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is None:
            return
        if self.pruner is None:
            self._pending_state = state
        else:
            self.pruner.load_state_dict(state)

    def after_train(self, runner) -> None:
        for h in self._grad_hooks:
            h.remove()
        self._grad_hooks = []
        if self.export and runner.rank == 0:
            pruned, config = self.pruner.export_with_config()
            path = save_pruned_checkpoint(osp.join(runner.work_dir, self.export), pruned, config,
                                          meta=dict(iter=runner.iter, epoch=runner.epoch,
                                                    dataset_meta=getattr(runner.train_dataloader.dataset,
                                                                         'metainfo', None)))
            runner.logger.info(f'PruningHook: exported the pruned detector to {path}\n' + self.pruner.summary())
