"""The two-pass sharpness-aware step (SAM / ASAM / AdaSAP per-neuron radius) as an mmengine OptimWrapper.

Why an optim wrapper and no model wrapper: mmengine's ``BaseModel.train_step`` (one process) and
``MMDistributedDataParallel.train_step`` (DDP, which never calls the module's own ``train_step``) follow the
same protocol -- ``with optim_wrapper.optim_context(model): loss = model(**data, mode='loss')`` then
``optim_wrapper.update_params(loss)``. This wrapper records that loss call (a forward pre-hook on ``model``
while its context is open) and replays it for the perturbed pass, so one code path serves both, with the
stock ``MMDistributedDataParallel`` and no ``model_wrapper_cfg``. Models with their own ``train_step`` can call
:meth:`SAMOptimWrapper.sharpness_step` with a closure instead.

The step: loss(w) -> backward -> eps -> w += eps -> loss(w + eps) -> backward -> w restored by copy -> the
stock torch optimizer steps with the second gradient (so schedulers, ``auto_scale_lr`` and checkpoints work
unchanged; weight decay of torch's SGD enters only that final step, the perturbation uses the bare loss
gradient). Gradient clipping happens only before the final step.
"""
import logging
import random
import re
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch.optim import Optimizer

from ...utils.checks import check_int
from .perturbation import PerturbationPlan, norm_stat_buffers
from .radius_policy import RadiusPolicy, build_radius_policy


@OPTIM_WRAPPERS.register_module()
class SAMOptimWrapper(OptimWrapper):
    """Sharpness-aware minimisation around any torch optimizer.

    Args:
        optimizer: the base optimizer (built by mmengine from ``optimizer=dict(...)``).
        rho: radius (uniform mode), and in policy mode the radius of parameters that no neuron group covers.
        adaptive: ASAM (eps = rho T^2 g / ||T g||, T = |w| + eta on weights, 1 on biases) instead of SAM.
        eta: ASAM's offset, > 0.
        radius_policy: a :class:`RadiusPolicy` (or its config dict, e.g. ``dict(type='AdaptiveRadius')``) giving
            per-channel radii for pruner-defined neuron groups; ``None``: uniform ``rho``.
        normalize: with a policy, ``'global'`` (one norm over all perturbed tensors, per-element radius) or
            ``'neuron'`` (each neuron normalised on its own, the literal AdaSAP reading, whose total size grows
            ~sqrt(number of neurons) for the same radii). Default ``'global'``: it keeps ASAM's radius scale,
            so rho values tuned for ASAM (0.5..2) stay meaningful.
        sam_interval: take the sharpness step every k-th iteration, a plain step otherwise.
        perturb_bias, perturb_norm, exclude: which tensors are perturbed (``exclude``: regex on parameter
            names). Excluded tensors are still trained, with the gradient at the perturbed point.
        fork_rng: replay the loss call with the RNG state of the first pass, so random anchor/RoI sampling
            (two-stage detectors) sees the same samples in both passes.
        sync_first_pass: under DDP, all-reduce the first-pass gradient (eps identical on every rank, as with
            one process and the global batch). ``False`` runs it in ``no_sync()`` (per-rank eps,
            "m-sharpness"; one all-reduce less). Restore-by-copy keeps ranks identical either way.
        accumulative_counts: must be 1 (a two-pass step cannot accumulate).
        clip_grad: as in ``OptimWrapper``, applied before the final step only.
    """
    NORMALIZE = ('global', 'neuron')

    def __init__(self, optimizer: Optimizer, rho: float = 0.05, adaptive: bool = False, eta: float = 0.01,
                 radius_policy=None, normalize: str = 'global', sam_interval: int = 1,
                 perturb_bias: bool = True, perturb_norm: bool = True, exclude: Optional[str] = None,
                 fork_rng: bool = False, sync_first_pass: bool = True, accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None) -> None:
        kind = type(self).__name__
        if accumulative_counts != 1:
            raise ValueError(f'{kind} needs accumulative_counts=1 (each update is two full passes over the same '
                             f'batch), got {accumulative_counts!r}')
        check_rho(kind, rho)
        if not (isinstance(eta, (int, float)) and eta > 0):
            raise ValueError(f'{kind}: eta must be > 0, got {eta!r}')
        if normalize not in self.NORMALIZE:
            raise ValueError(f'{kind}: unknown normalize {normalize!r}, expected one of {self.NORMALIZE}')
        check_int(sam_interval, f'{kind}: sam_interval')
        check_adaptive(kind, adaptive)
        if exclude is not None:
            try:
                re.compile(exclude)
            except re.error as e:
                raise ValueError(f'{kind}: exclude is not a valid regular expression: {exclude!r} ({e})')
        super().__init__(optimizer, accumulative_counts=1, clip_grad=clip_grad)
        self.rho, self.adaptive, self.eta = float(rho), adaptive, float(eta)
        self.normalize, self.sam_interval = normalize, sam_interval
        self.perturb_bias, self.perturb_norm, self.exclude = perturb_bias, perturb_norm, exclude
        self.fork_rng, self.sync_first_pass = fork_rng, sync_first_pass
        self._policy: Optional[RadiusPolicy] = None
        self.set_radius_policy(radius_policy)
        self._plan: Optional[PerturbationPlan] = None
        self._plan_key, self._radii_version = None, None
        self.plan_builds = 0  # perturbation-plan (structure) builds; radius refreshes don't count
        self._saved: List[torch.Tensor] = []
        self._stats: List[torch.Tensor] = []
        self._saved_stats: List[torch.Tensor] = []
        self._model: Optional[nn.Module] = None
        self._call = None
        self._calls = 0
        self._rng = None
        self._sam_now = False
        self._context_seen = False
        self.sharpness_enabled = True  # False: plain steps (a phase of AdaSAPHook without sharpness)
        self.sam_steps = 0  # sharpness steps taken (two passes each)
        self.nonfinite_skips = 0  # of those, steps whose perturbation was skipped on every rank

    # ------------------------------------------------------------------ radius policy
    @property
    def radius_policy(self) -> Optional[RadiusPolicy]:
        return self._policy

    def set_radius_policy(self, policy) -> None:
        """Use ``policy`` (object, config dict, or None for uniform ``rho``); later ``policy.update(groups)``
        calls are picked up automatically at the next step."""
        self._policy = None if policy is None else build_radius_policy(policy)
        self._plan_key = None

    def reset_plan(self) -> None:
        """Forget the perturbation plan: the next step rebuilds it. Needed after the model's parameters changed
        shape in place (physical pruning keeps their identity, so nothing else would notice)."""
        self._plan, self._plan_key, self._radii_version = None, None, None

    def configure_sharpness(self, enabled: bool = True, rho: Optional[float] = None,
                            adaptive: Optional[bool] = None, radius_policy=None) -> None:
        """Switch the step between phases (used by ``AdaSAPHook``): on/off, radius, SAM/ASAM, radius policy."""
        if rho is not None:
            self.rho = check_rho(type(self).__name__, rho)
        if adaptive is not None:
            self.adaptive = check_adaptive(type(self).__name__, adaptive)
        self.sharpness_enabled = bool(enabled)
        self.set_radius_policy(radius_policy)

    # ------------------------------------------------------------------ the mmengine protocol
    @contextmanager
    def optim_context(self, model: nn.Module):
        self._context_seen = True
        self._sam_now = self.sharpness_enabled and self._inner_count % self.sam_interval == 0
        if not self._sam_now:
            with super().optim_context(model), self._autocast():
                yield
            return
        self.bind(model)
        self._model, self._call, self._calls, self._rng = model, None, 0, None
        handle = model.register_forward_pre_hook(self._capture, with_kwargs=True)
        try:
            with ExitStack() as stack:
                stack.enter_context(super().optim_context(model))
                if not self.sync_first_pass and hasattr(model, 'no_sync'):
                    stack.enter_context(model.no_sync())
                stack.enter_context(self._autocast())
                yield
        finally:
            handle.remove()

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        if not self._context_seen:
            raise RuntimeError(
                f'{type(self).__name__}.update_params must follow `with optim_wrapper.optim_context(model):` '
                'around the loss forward (as BaseModel.train_step and MMDistributedDataParallel.train_step do); '
                'custom training code: call optim_wrapper.bind(model) and sharpness_step(loss, closure)')
        self._context_seen = False
        if not self._sam_now:
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self._sam_now = False
        model, call, calls = self._model, self._call, self._calls
        self._model, self._call = None, None
        if call is None:
            raise RuntimeError(
                f'{type(self).__name__} replays the loss forward, but no call of the model was seen inside '
                '`with optim_wrapper.optim_context(model):` (BaseModel.train_step and '
                'MMDistributedDataParallel.train_step do this). Custom training code: call '
                'optim_wrapper.bind(model) and optim_wrapper.sharpness_step(loss, closure).')
        if calls != 1:
            raise RuntimeError(f'{type(self).__name__} can replay exactly one loss call, but the model was '
                               f'called {calls} times inside optim_context; use sharpness_step(loss, closure)')
        args, kwargs = call

        def closure():
            return _total_loss(model, model(*args, **kwargs))

        self.sharpness_step(loss, closure, step_kwargs, zero_kwargs)

    def _capture(self, module, args, kwargs):
        self._calls += 1
        if self._calls == 1:
            self._call = (args, dict(kwargs))
            if self.fork_rng:
                self._rng = _rng_state(self._device())

    # ------------------------------------------------------------------ the step itself
    def bind(self, model: nn.Module) -> None:
        """(Re)build the perturbation plan if the model, the optimizer's parameters, ``rho`` / ``adaptive``, the
        policy or its structure (groups, masks) changed; if only the policy's radii changed, refresh them in
        place (:meth:`PerturbationPlan.set_radii`). ``plan_builds`` counts the rebuilds."""
        module = model.module if is_model_wrapper(model) else model
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        policy = self._policy
        if policy is not None and policy.needs_groups and not policy.groups:
            raise RuntimeError(
                f'{type(self).__name__}: radius policy {type(policy).__name__} ranks neurons by importance, but no '
                'pruner has given it neuron groups. Add dict(type=\'AdaSAPHook\', ...) to the config (it feeds the '
                'pruner\'s groups and scores to the policy), or use a uniform radius (radius_policy=None).')
        if policy is not None and policy.version == 0:
            policy.update()  # a policy built from config: groups come later, until then uniform ``rho``
        key = (id(module), tuple(map(id, params)), id(policy),
               policy.structure_version if policy is not None else -1, self.rho, self.adaptive)
        radii_version = policy.version if policy is not None else -1
        if key == self._plan_key:
            if radii_version != self._radii_version:
                self._plan.set_radii(policy.channel_radii)
                self._radii_version = radii_version
            return
        self._plan = PerturbationPlan(
            module, params, rho=self.rho, adaptive=self.adaptive, eta=self.eta, normalize=self.normalize,
            groups=policy.groups if policy is not None else (),
            channel_radii=policy.channel_radii if policy is not None else (),
            perturb_bias=self.perturb_bias, perturb_norm=self.perturb_norm, exclude=self.exclude)
        self._saved = [torch.empty_like(p, memory_format=torch.preserve_format) for p in self._plan.params]
        self._stats = norm_stat_buffers(module)
        self._saved_stats = [b.clone() for b in self._stats]
        self._plan_key, self._radii_version = key, radii_version
        self.plan_builds += 1

    def sharpness_step(self, loss: torch.Tensor, closure: Callable[[], torch.Tensor],
                       step_kwargs: Optional[Dict] = None, zero_kwargs: Optional[Dict] = None) -> None:
        """One two-pass update: ``loss`` is the loss at w (graph attached), ``closure()`` recomputes the loss
        (forward only) at the current weights. Counts as one iteration."""
        if self._plan is None:
            raise RuntimeError(f'{type(self).__name__}.sharpness_step: call bind(model) first')
        plan = self._plan
        self.backward(loss)  # first pass; the one count of this iteration
        active = [i for i, p in enumerate(plan.params) if p.grad is not None]
        params = [plan.params[i] for i in active]
        eps_norm = None
        if params:
            eps, total_sq = plan.compute([p.grad for p in params],
                                         None if len(active) == len(plan.params) else active)
        else:
            eps, total_sq = [], torch.zeros((), device=self._device())
        perturbed = self._finite_on_every_rank(total_sq) and bool(params)
        if perturbed:
            saved = [self._saved[i] for i in active]
            torch._foreach_copy_(saved, [p.detach() for p in params])
            with torch.no_grad():
                torch._foreach_add_(params, eps)
            eps_norm = torch.stack(torch._foreach_norm(eps)).norm()
        elif params:
            self.nonfinite_skips += 1
            print_log(f'{type(self).__name__}: non-finite first-pass gradient; perturbation skipped on every '
                      'rank this step', logger='current', level=logging.WARNING)
        del eps
        self.optimizer.zero_grad(set_to_none=True)
        if self._stats:
            torch._foreach_copy_(self._saved_stats, self._stats)
        rng_after_first = None
        if self._rng is not None:
            rng_after_first = _rng_state(self._device())
            _set_rng_state(self._rng)
        try:
            with self._autocast():
                perturbed_loss = closure()
            self._scaled(perturbed_loss).backward()  # second pass; not counted
        finally:
            if self._stats:
                torch._foreach_copy_(self._stats, self._saved_stats)
            if rng_after_first is not None:
                _set_rng_state(rng_after_first)
                self._rng = None
            if perturbed:
                with torch.no_grad():
                    torch._foreach_copy_(params, saved)
        self.step(**(step_kwargs or {}))
        self.zero_grad(**(zero_kwargs or {}))
        self.sam_steps += 1
        self.message_hub.update_scalar('train/loss_perturbed', float(perturbed_loss.detach()))
        self.message_hub.update_scalar('train/eps_norm', float(eps_norm) if eps_norm is not None else 0.)

    # ------------------------------------------------------------------ overridable pieces (AMP)
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self._scaled(loss).backward(**kwargs)
        self._inner_count += 1

    def _scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def _autocast(self):
        return nullcontext()

    def _device(self) -> torch.device:
        for g in self.optimizer.param_groups:
            for p in g['params']:
                return p.device
        return torch.device('cpu')

    @staticmethod
    def _finite_on_every_rank(total_sq: torch.Tensor) -> bool:
        """One collective on every rank whatever its own gradient, so a non-finite rank cannot deadlock."""
        bad = (~torch.isfinite(total_sq.detach())).to(torch.float32).reshape(1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())


def check_rho(kind: str, rho) -> float:
    if not (isinstance(rho, (int, float)) and rho >= 0):
        raise ValueError(f'{kind}: rho must be a number >= 0, got {rho!r}')
    return float(rho)


def check_adaptive(kind: str, adaptive) -> bool:
    if not isinstance(adaptive, bool):
        raise ValueError(f'{kind}: adaptive must be True (ASAM) or False (SAM), got {adaptive!r}')
    return adaptive


def _total_loss(model: nn.Module, losses) -> torch.Tensor:
    if isinstance(losses, torch.Tensor):
        return losses
    module = model.module if is_model_wrapper(model) else model
    return module.parse_losses(losses)[0]


def _rng_state(device: torch.device) -> dict:
    state = dict(cpu=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == 'cuda':
        state['cuda'] = (device, torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['cpu'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state:
        torch.cuda.set_rng_state(state['cuda'][1], state['cuda'][0])
