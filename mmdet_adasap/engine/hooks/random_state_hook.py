"""``RandomStateHook``: a resumed run draws the same random numbers as the uninterrupted one.

mmengine's checkpoints restore the model, optimizer, schedulers and the sampler's epoch, but not the random
state data augmentation, the dataloader's worker seeds, the sharpness step or the pruner draw from. This hook
(added to every Runner of a run that imports the plugin, :mod:`mmdet_adasap.engine.plugin_hooks`):

- captures python / numpy / torch (and CUDA) random states at the end of every training epoch (and before an
  iteration checkpoint), per rank, and stores them in the checkpoints (``checkpoint['adasap_random_state']``);
- restores its rank's states when training continues from the checkpoint's iteration (``resume``; a checkpoint
  used as ``load_from`` starts a new run and is left alone), at the start of the first epoch, after any setup
  (tracing the pruner, building the optimizer) has drawn what it draws; an iteration-based loop first replays
  the batches it already trained on (drawing their augmentation), so there the states are restored right
  before the first new batch is drawn;
- keeps validation out of the training stream (states saved before and restored after it), so that a run's
  randomness does not depend on whether it validated where it was resumed;
- seeds dataloader workers per epoch (mmengine's default seeds them identically every epoch), from the seed,
  epoch, rank and worker. Persistent workers keep their streams across epochs, so a resumed run restarts them
  elsewhere: use ``persistent_workers=False`` where resumes must be exact. A resumed run warns where it cannot
  be exact: persistent workers, or no ``randomness.seed`` in the config (mmengine then draws a new seed, and the
  sampler's shuffle and the workers' seeds come from it); a run that is not resumed has nothing to repeat.
"""
import functools
import random
import warnings
from typing import Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

STATE_KEY = 'adasap_random_state'


def capture() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_worker(worker_id: int, num_workers: int, rank: int, seed: int, epoch: int) -> None:
    """Seed a dataloader worker from (seed, epoch, rank, worker): other streams every epoch, the same on resume."""
    worker_seed = int(np.random.SeedSequence([seed, epoch, rank, worker_id]).generate_state(1)[0])
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves and restores the random states per rank so that a resumed run equals the uninterrupted one."""
    priority = 'LOW'  # after_train_epoch: before CheckpointHook (VERY_LOW) saves

    def __init__(self):
        self._states = None  # (iteration, [state per rank]) captured for the next checkpoint
        self._pending = None  # (iteration, [state per rank]) loaded, applied when training continues there
        self._before_val = None

    def _capture(self, iteration: int) -> None:
        state = capture()
        self._states = (iteration, all_gather_object(state) if is_distributed() else [state])

    def before_train_epoch(self, runner) -> None:
        self._seed_workers(runner)
        if self._pending is None:
            return
        iteration, states = self._pending
        self._pending = None
        if iteration != runner.iter:
            return  # a checkpoint loaded to start a new run (load_from), not to continue one
        if len(states) != get_world_size():
            warnings.warn(f'RandomStateHook: the checkpoint holds random states of {len(states)} processes, this '
                          f'run has {get_world_size()}; the resumed run cannot repeat the interrupted one exactly')
            return
        _warn_where_a_resume_cannot_be_exact(runner)
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and runner.iter > 0:  # it skips runner.iter batches first
            loop.dataloader_iterator = _RestoreAfter(loop.dataloader_iterator, runner.iter, states[get_rank()])
        else:
            restore(states[get_rank()])

    def _seed_workers(self, runner) -> None:
        loader = runner.train_dataloader
        init = getattr(loader, 'worker_init_fn', None)
        if not isinstance(init, functools.partial) or init.func not in (mmengine_worker_init_fn, seed_worker):
            return  # none, or the config's own
        kw = init.keywords
        loader.worker_init_fn = functools.partial(seed_worker, num_workers=kw['num_workers'], rank=kw['rank'],
                                                  seed=kw['seed'], epoch=runner.epoch)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if _iteration_checkpoint_due(runner):
            self._capture(runner.iter + 1)  # the iteration the checkpoint's meta names

    def after_train_epoch(self, runner) -> None:
        self._capture(runner.iter)

    def before_val(self, runner) -> None:
        self._before_val = capture()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore(self._before_val)
            self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states is not None:
            checkpoint[STATE_KEY] = dict(iter=self._states[0], ranks=self._states[1])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state: Optional[dict] = checkpoint.get(STATE_KEY)
        if state is not None:
            self._pending = (state['iter'], state['ranks'])


def _warn_where_a_resume_cannot_be_exact(runner) -> None:
    """What the saved states cannot bring back: a seed drawn afresh by this run (mmengine draws one when the
    config sets none; the sampler's shuffle and the workers' seeds derive from it), and persistent workers."""
    if (runner.cfg.get('randomness') or {}).get('seed') is None:
        warnings.warn('RandomStateHook: this resumed run has no randomness.seed in its config, so mmengine drew a '
                      'new seed and the data order and worker seeds differ from the interrupted run; set '
                      'randomness.seed (e.g. --cfg-options randomness.seed=0) in runs that must resume exactly')
    loader = runner.train_dataloader
    if getattr(loader, 'num_workers', 0) > 0 and getattr(loader, 'persistent_workers', False):
        warnings.warn('RandomStateHook: persistent dataloader workers keep their random streams across epochs, '
                      'so this resumed run cannot repeat the interrupted one exactly; set '
                      'train_dataloader.persistent_workers=False where resumes must be exact')


class _RestoreAfter:
    """A data iterator that restores ``state`` right before its ``skip + 1``-th batch is drawn."""

    def __init__(self, iterator, skip: int, state: dict):
        self.iterator, self.skip, self.state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.state is not None and self.skip == 0:
            restore(self.state)
            self.state = None
        self.skip -= 1
        return next(self.iterator)

    def __getattr__(self, name):
        return getattr(self.iterator, name)


def _iteration_checkpoint_due(runner) -> bool:
    """Whether a CheckpointHook saves after this iteration (by_epoch=False)."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and not hook.by_epoch and hook.interval > 0:
            if hook.every_n_train_iters(runner, hook.interval) or hook.is_last_train_iter(runner):
                return True
    return False
