"""Physical pruning in place, in the middle of a training run: the live model, its optimizer state and any
averaged (EMA) copy shrink to the kept channels; the optimizer follows the re-shaped parameters.

Masks keep every shape fixed so that pruning can happen while DDP, EMA, schedulers and checkpoints run
unchanged; once the pruning phase is over nothing needs fixed shapes, and fine-tuning at the dense cost only
multiplies zeros. This module does the switch:

* the pruned weights and the channel configuration come from the same path as the final export
  (:func:`~.export.export_pruned`, torch-pruning's surgery on a copy, then :func:`~.export.channel_config`), so
  the live model and an exported ``pruned.pth`` cannot drift apart;
* :func:`~.export.apply_channel_config` re-shapes the live modules in place, and every re-shaped parameter
  becomes a new ``Parameter`` object on the same storage: autograd caches a leaf's shape in its gradient
  accumulator once it has been through a backward pass, so swapping ``.data`` alone makes the next backward
  fail ("returned an invalid gradient ... expected shape compatible with" the old shape). The optimizer's param
  groups and state are re-keyed to the new objects, so schedulers and per-group settings (``paramwise_cfg``)
  carry over; whatever else held a parameter (the SAM plan, gradient hooks) must be rebuilt by the caller;
* which indices of each tensor survive comes from the groups' ParamSlices (the record the masks use), plus the
  BN running statistics of the groups' BN members. That slices the per-parameter optimizer state (momentum,
  Adam moments) and EMA copies, and it is checked against the shapes torch-pruning produced.

Everything that can be refused is checked before anything is modified: an optimizer state this code does not
understand raises, naming the parameter and the state key, and the model is left as it was.
"""
from typing import Dict, Iterable, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseAveragedModel

from .channel_groups import ChannelGroups
from .export import apply_channel_config, channel_config, export_pruned

#: per tensor name (parameter or buffer of the model): {dim: indices kept along it}
KeptIndices = Dict[str, Dict[int, torch.Tensor]]


def kept_indices(groups: ChannelGroups, masks: Dict[str, torch.Tensor]) -> KeptIndices:
    """For every tensor a dropped channel lives in: the indices kept along each affected dim."""
    model = groups.model
    names = {id(p): n for n, p in model.named_parameters()}
    sizes = {n: t.shape for n, t in model.state_dict(keep_vars=True).items()}
    dropped: Dict[str, Dict[int, set]] = {}
    for g in groups:
        keep = masks[g.name]
        if bool(keep.all()):
            continue
        drop = (~keep).nonzero().flatten()
        for s in g.slices:
            name = names[id(s.param)]
            dropped.setdefault(name, {}).setdefault(s.dim, set()).update(s.index[drop.to(s.index.device)].tolist())
        for module_name, role, index in g.members:  # BN running statistics are buffers, not in any slice
            if role == 'bn':
                for buf in ('running_mean', 'running_var'):
                    if f'{module_name}.{buf}' in sizes:
                        dropped.setdefault(f'{module_name}.{buf}', {}).setdefault(0, set()).update(
                            index[drop.to(index.device)].tolist())
    kept: KeptIndices = {}
    for name, dims in dropped.items():
        kept[name] = {dim: torch.tensor(sorted(set(range(sizes[name][dim])) - gone), dtype=torch.long)
                      for dim, gone in dims.items()}
    # a module shared under several names (RTMDetSepBNHead's convs shared across levels) has one parameter but
    # a state_dict entry per name: every alias keeps what its first name keeps
    first_name: Dict[int, str] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        first = first_name.setdefault(id(t), name)
        if first != name and first in kept:
            kept[name] = kept[first]
    return kept


def slice_kept(t: torch.Tensor, dims: Dict[int, torch.Tensor]) -> torch.Tensor:
    """``t`` restricted to the kept indices along each dim in ``dims``."""
    for dim, idx in dims.items():
        t = t.index_select(dim, idx.to(t.device))
    return t.contiguous()


def _sliced_shape(shape, dims: Dict[int, torch.Tensor]):
    out = list(shape)
    for dim, idx in dims.items():
        out[dim] = idx.numel()
    return torch.Size(out)


def check_optimizer_state(optimizer: Optional[torch.optim.Optimizer], model: nn.Module, kept: KeptIndices) -> None:
    """Refuse, before any change, optimizer state that cannot follow the surgery: a per-parameter tensor that
    is neither a scalar (Adam's ``step``) nor shaped like its parameter (momentum, Adam moments)."""
    if optimizer is None:
        return
    params = dict(model.named_parameters())
    for name in kept:
        p = params.get(name)
        if p is None:
            continue
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != p.shape:
                raise ValueError(
                    f'cannot prune physically: {type(optimizer).__name__} keeps state {key!r} of shape '
                    f'{tuple(value.shape)} for parameter {name!r} of shape {tuple(p.shape)}; only scalar state '
                    'and state shaped like the parameter can be sliced. Keep masks-only pruning '
                    '(physical=False) with this optimizer.')


@torch.no_grad()
def prune_physically(groups: ChannelGroups, masks: Dict[str, torch.Tensor],
                     optimizer: Optional[torch.optim.Optimizer] = None,
                     averaged: Iterable[nn.Module] = ()) -> Dict[str, dict]:
    """Remove the channels ``masks`` drops from ``groups.model`` in place; returns the channel configuration.

    Args:
        groups, masks: the pruner's groups (traced on this model) and keep-masks (True = kept).
        optimizer: its per-parameter state is sliced to the kept channels (scalars kept as they are).
        averaged: copies of the model with the same parameter names, re-shaped and sliced the same way:
            plain modules or mmengine averaged models (``EMAHook``'s ``ema_model``).

    After the call the groups' ParamSlices and the masks describe the old shapes: the caller retires them
    (removes gradient hooks) and rebuilds anything keyed on shapes (the SAM wrapper's perturbation plan).
    """
    model = groups.model
    kept = kept_indices(groups, masks)
    check_optimizer_state(optimizer, model, kept)
    exported = export_pruned(groups, masks)
    config = channel_config(model, exported)
    new_state = exported.state_dict()
    old_shapes = {k: v.shape for k, v in model.state_dict().items()}
    _check_against_surgery(kept, old_shapes, new_state)
    if optimizer is not None:
        _slice_optimizer_state(optimizer, model, kept, old_shapes)
    apply_channel_config(model, config)
    model.load_state_dict(new_state, strict=True)
    renewed = _renew_reshaped_parameters(model, old_shapes)
    if optimizer is not None:
        _rekey_optimizer(optimizer, renewed)
    for copy_ in averaged:
        _slice_module(copy_, config, kept)
    return config


def _check_against_surgery(kept: KeptIndices, old_shapes: dict, new_state: dict) -> None:
    """The slices' record of kept indices must give exactly the shapes torch-pruning's surgery produced."""
    for name, shape in old_shapes.items():
        expected = _sliced_shape(shape, kept.get(name, {}))
        if name not in new_state or new_state[name].shape != expected:
            got = tuple(new_state[name].shape) if name in new_state else 'missing'
            raise RuntimeError(f'physical pruning: tensor {name!r} would be {tuple(expected)} by the channel '
                               f'groups but the surgery made it {got}; the groups do not describe this model')


def _slice_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module, kept: KeptIndices,
                           old_shapes: dict) -> None:
    for name, p in model.named_parameters():
        dims, state = kept.get(name), optimizer.state.get(p)
        if not dims or not state:
            continue
        for key, value in list(state.items()):
            if torch.is_tensor(value) and value.dim() > 0 and value.shape == old_shapes[name]:
                state[key] = slice_kept(value, dims)


def _renew_reshaped_parameters(model: nn.Module, old_shapes: dict) -> Dict[nn.Parameter, nn.Parameter]:
    """A fresh ``Parameter`` (same storage, no cached autograd state) for every parameter whose shape changed;
    returns {old: new}."""
    renewed = {}
    for module_name, module in model.named_modules():
        for name, p in list(module._parameters.items()):
            full = f'{module_name}.{name}' if module_name else name
            if p is None or p.shape == old_shapes.get(full, p.shape):
                continue
            new = nn.Parameter(p.data, requires_grad=p.requires_grad)
            module._parameters[name] = new
            renewed[p] = new
    return renewed


def _rekey_optimizer(optimizer: torch.optim.Optimizer, renewed: Dict[nn.Parameter, nn.Parameter]) -> None:
    for group in optimizer.param_groups:
        group['params'] = [renewed.get(p, p) for p in group['params']]
    for old, new in renewed.items():
        if old in optimizer.state:
            optimizer.state[new] = optimizer.state.pop(old)


def _slice_module(module: nn.Module, config: Dict[str, dict], kept: KeptIndices) -> None:
    """Re-shape a copy of the model (plain, or an mmengine averaged model) and slice its values."""
    inner = module.module if isinstance(module, BaseAveragedModel) else module
    state = {k: slice_kept(v, kept[k]) if k in kept else v.clone() for k, v in inner.state_dict().items()}
    reshape_averaged(module, config)
    inner.load_state_dict(state, strict=True)


def reshape_averaged(module: nn.Module, config: Dict[str, dict]) -> None:
    """Re-shape a copy of the model to ``config`` (values uninitialised: load or slice them next); for an
    mmengine averaged model (``BaseAveragedModel``), its ``.module``, whose ``avg_parameters`` map is then
    re-read (with ``update_buffers=True`` it holds detached state-dict tensors that would still point at the
    dense storage)."""
    inner = module.module if isinstance(module, BaseAveragedModel) else module
    apply_channel_config(inner, config)
    if isinstance(module, BaseAveragedModel):
        module.avg_parameters = inner.state_dict() if module.update_buffers else dict(inner.named_parameters())
