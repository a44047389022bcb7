"""Mixed-precision SAM: both passes under autocast, fp16 loss scaling through torch's GradScaler.

Not a subclass of mmengine's ``AmpOptimWrapper``: its ``__init__`` refuses to run without CUDA/NPU/MLU/MUSA and
its ``autocast`` only allows bf16 on CPU, while this wrapper must also run (bf16) on CPU. The checkpoint format
(``loss_scaler`` key beside the optimizer state) is the same as ``AmpOptimWrapper``'s.

The perturbation is built from the *scaled* first-pass gradients: eps = rho T^2 g / ||T g|| is invariant to a
global rescale of g (per neuron as well), so no ``unscale_`` is needed there and GradScaler's one ``unscale_``
per update stays with the final step. A first pass that overflows skips the perturbation on every rank; the
second pass then runs at w and the scaler skips the step and lowers the scale as usual.
"""
from typing import Optional, Union

import torch
from mmengine.device import get_device
from mmengine.registry import OPTIM_WRAPPERS

from .sam_optim_wrapper import SAMOptimWrapper


def amp_variant_of(optim_wrapper_type: str) -> str:
    """The mixed-precision counterpart of an optim wrapper type (used by ``tools/train.py --amp``)."""
    return {'OptimWrapper': 'AmpOptimWrapper',
            'SAMOptimWrapper': 'AmpSAMOptimWrapper'}.get(optim_wrapper_type, optim_wrapper_type)


@OPTIM_WRAPPERS.register_module()
class AmpSAMOptimWrapper(SAMOptimWrapper):
    """:class:`SAMOptimWrapper` with autocast.

    Args:
        loss_scale: ``'dynamic'``, a float (static scale), a dict of ``torch.amp.GradScaler`` arguments, or
            ``None`` (no scaling; enough for bf16).
        dtype: ``'float16'`` or ``'bfloat16'`` (default: float16 on CUDA, bfloat16 elsewhere).
        **kwargs: as for :class:`SAMOptimWrapper`.
    """
    DTYPES = ('float16', 'bfloat16')

    def __init__(self, loss_scale: Union[str, float, dict, None] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.device_type = get_device()
        if dtype is None:
            dtype = 'float16' if self.device_type == 'cuda' else 'bfloat16'
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype not in self.DTYPES:
            raise ValueError(f'AmpSAMOptimWrapper: dtype must be one of {self.DTYPES}, got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)
        self._scale_update_param = None
        if loss_scale is None:
            self.loss_scaler = None
        elif loss_scale == 'dynamic':
            self.loss_scaler = torch.amp.GradScaler(self.device_type)
        elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) and loss_scale > 0:
            self._scale_update_param = float(loss_scale)
            self.loss_scaler = torch.amp.GradScaler(self.device_type, init_scale=float(loss_scale))
        elif isinstance(loss_scale, dict):
            self.loss_scaler = torch.amp.GradScaler(self.device_type, **loss_scale)
        else:
            raise ValueError("AmpSAMOptimWrapper: loss_scale must be 'dynamic', a positive number, a dict or "
                             f'None, got {loss_scale!r}')

    def _autocast(self):
        return torch.autocast(device_type=self.device_type, dtype=self.cast_dtype)

    def _scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.loss_scaler is None else self.loss_scaler.scale(loss)

    def step(self, **kwargs) -> None:
        if self.loss_scaler is None:
            return super().step(**kwargs)
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        if 'base_param_settings' in state_dict:
            self.base_param_settings = state_dict.pop('base_param_settings')
        self.optimizer.load_state_dict(state_dict)
