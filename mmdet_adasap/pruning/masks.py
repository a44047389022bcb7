"""Soft channel masks: pruned channels become exact zeros while every tensor keeps its shape.

Keeping shapes fixed during training is what lets DDP, EMA, LR schedulers and checkpoints work unchanged.
A masked channel is zeroed everywhere it lives (producer filter and bias, BN gamma/beta and running stats,
L2Norm scale, consumers' input columns), its gradients are masked by tensor hooks (so SGD momentum, Adam
moments and a SAM perturbation never see it), and its optimizer state is cleared when the mask changes.
With zero weight, zero gradient and zero state, weight decay and momentum keep it at exactly zero.
"""
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .channel_groups import ChannelGroups


class ChannelMasks:
    """Boolean keep-masks per group (True = kept), applied to the parameters the groups' slices name."""

    def __init__(self, groups: ChannelGroups):
        self.groups = groups
        self.masks: Dict[str, torch.Tensor] = {g.name: torch.ones(g.size, dtype=torch.bool) for g in groups}
        self._param_masks: Dict[nn.Parameter, torch.Tensor] = {}
        self._hooks: List = []

    # ---------------------------------------------------------------- state
    def set(self, masks: Dict[str, torch.Tensor]) -> None:
        """Replace masks (unknown group names or wrong sizes raise) and rebuild the per-parameter masks."""
        for name, m in masks.items():
            if name not in self.masks:
                raise KeyError(f'mask for unknown channel group {name!r}')
            if m.numel() != self.masks[name].numel():
                raise ValueError(f'mask for group {name!r} has {m.numel()} channels, the group has '
                                 f'{self.masks[name].numel()}')
            self.masks[name] = m.detach().to(torch.bool).cpu().clone()
        self._rebuild()

    def num_kept(self) -> Dict[str, int]:
        return {k: int(m.sum()) for k, m in self.masks.items()}

    def any_pruned(self) -> bool:
        return any(not bool(m.all()) for m in self.masks.values())

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: m.clone() for k, m in self.masks.items()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.masks) - set(state))
        if missing:
            raise KeyError(f'checkpoint has no mask for channel group {missing[0]!r} '
                           f'({len(missing)} missing): was it saved from a different model or config?')
        self.set(state)

    def _rebuild(self) -> None:
        """Per parameter, one 0/1 vector per masked dim (rows of producers, columns of consumers); applying
        them as broadcast views avoids materialising a full-size mask per weight."""
        self._param_masks = {}
        for g in self.groups:
            keep = self.masks[g.name]
            if bool(keep.all()):
                continue
            drop = (~keep).nonzero().flatten()
            for s in g.slices:
                vectors = self._param_masks.setdefault(s.param, {})
                if s.dim not in vectors:
                    vectors[s.dim] = torch.ones(s.param.shape[s.dim], dtype=s.param.dtype, device=s.param.device)
                vectors[s.dim].index_fill_(0, s.index[drop.to(s.index.device)], 0)

    def _views(self, p: torch.Tensor, like: torch.Tensor):
        for dim, v in self._param_masks[p].items():
            shape = [1] * like.dim()
            shape[dim] = -1
            yield v.to(like.device, like.dtype).view(shape)

    def _mul_(self, p: torch.Tensor, t: torch.Tensor) -> None:
        for v in self._views(p, t):
            t.mul_(v)

    # ---------------------------------------------------------------- effect
    @torch.no_grad()
    def apply(self) -> None:
        """Zero every masked channel (parameters and BN running stats)."""
        for p in self._param_masks:
            self._mul_(p, p.data)
        model = self.groups.model
        for g in self.groups:
            keep = self.masks[g.name]
            if bool(keep.all()):
                continue
            drop = (~keep).nonzero().flatten()
            for name, role, index in g.members:
                if role != 'bn':
                    continue
                bn = model.get_submodule(name)
                if bn.running_mean is not None:
                    idx = index[drop].to(bn.running_mean.device)
                    bn.running_mean.index_fill_(0, idx, 0.)
                    bn.running_var.index_fill_(0, idx, 1.)

    def register_grad_hooks(self) -> None:
        """Mask gradients as autograd produces them; idempotent."""
        self.remove_grad_hooks()
        params = {s.param for g in self.groups for s in g.slices if s.param.requires_grad}  # frozen BN: no grad
        for p in params:
            self._hooks.append(p.register_hook(self._grad_hook(p)))

    def _grad_hook(self, p):
        def hook(grad):  # a new tensor (autograd's own must not be written), one multiply per masked dim
            if p not in self._param_masks:
                return None
            for v in self._views(p, grad):
                grad = grad * v
            return grad
        return hook

    def remove_grad_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    @torch.no_grad()
    def clear_optimizer_state(self, optimizer: Optional[torch.optim.Optimizer]) -> None:
        """Zero the masked entries of every per-parameter optimizer buffer (momentum, Adam moments...)."""
        if optimizer is None:
            return
        for p in self._param_masks:
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    self._mul_(p, value)
