"""The contract between channel pruning and the sharpness-aware step.

A *neuron* (AdaSAP's unit of perturbation and of removal) is one prunable output channel together with
every parameter slice that is removed with it: the producing conv's filter and bias, the BN gamma/beta,
coupled residual partners, an ``L2Norm`` scale, and the consumers' input slices. Pruning builds
``NeuronGroup`` objects (from torch-pruning's dependency graph); the radius policy and the SAM step read them.
"""
from dataclasses import dataclass, field
from typing import List, Optional

import torch


@dataclass
class ParamSlice:
    """Channel ``j`` of the owning group is ``param.index_select(dim, index[j:j+1])``."""
    param: torch.nn.Parameter
    dim: int
    index: torch.Tensor  # LongTensor[num_channels], on param's device
    name: str = ''


@dataclass
class NeuronGroup:
    """One coupled-channel group: ``num_channels`` neurons that share every slice in ``slices``."""
    name: str
    slices: List[ParamSlice]
    num_channels: int
    importance: Optional[torch.Tensor] = None  # FloatTensor[num_channels], the pruner's current scores
    mask: Optional[torch.Tensor] = None  # BoolTensor[num_channels]; True = kept, False = pruned (masked)
    extra: dict = field(default_factory=dict)

    def kept(self) -> torch.Tensor:
        if self.mask is None:
            return torch.ones(self.num_channels, dtype=torch.bool)
        return self.mask
