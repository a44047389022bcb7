"""A tiny conv-BN-conv-BN-linear classifier as an mmengine BaseModel, with hand-written neuron groups."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmdet_adasap.structures.neuron_groups import NeuronGroup, ParamSlice


class TinyNet(BaseModel):
    def __init__(self, norm: str = 'bn'):
        super().__init__()
        make_norm = {'bn': nn.BatchNorm2d, 'syncbn': nn.SyncBatchNorm}[norm]
        # no conv biases before BN (as in detectors): their true gradient is 0 and float32 noise would dominate
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), make_norm(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 1, bias=False), make_norm(5)
        self.fc = nn.Linear(5, 2)
        self.forward_calls = 0
        self.seen_weights = []  # parameters as each forward saw them (when record=True)
        self.record = False
        self.use_dropout = False

    def forward(self, inputs, labels=None, mode='loss'):
        self.forward_calls += 1
        if self.record:
            self.seen_weights.append({n: p.detach().clone() for n, p in self.named_parameters()})
        h = F.relu(self.bn1(self.conv1(inputs)))
        h = F.relu(self.bn2(self.conv2(h))).mean((2, 3))
        if self.use_dropout:
            h = F.dropout(h, 0.5, training=True)
        return dict(loss_cls=F.cross_entropy(self.fc(h), labels))


def tiny_batch(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=torch.randn(n, 3, 6, 6, generator=g), labels=torch.randint(0, 2, (n,), generator=g))


def tiny_groups(model: TinyNet, seed: int = 1, masked=((0, 2),)):
    """Two groups as torch-pruning would couple them: conv1's output channels (its filter, bn1, conv2's input
    slices) and conv2's (filter, bn2, fc's input columns). ``masked``: (group, channel)."""
    g = torch.Generator().manual_seed(seed)

    def sl(param, dim, n):
        return ParamSlice(param, dim, torch.arange(n))

    m = model
    groups = [
        NeuronGroup('conv1', [sl(m.conv1.weight, 0, 4), sl(m.bn1.weight, 0, 4),
                              sl(m.bn1.bias, 0, 4), sl(m.conv2.weight, 1, 4)], 4),
        NeuronGroup('conv2', [sl(m.conv2.weight, 0, 5), sl(m.bn2.weight, 0, 5),
                              sl(m.bn2.bias, 0, 5), sl(m.fc.weight, 1, 5)], 5),
    ]
    for grp in groups:
        grp.importance = torch.rand(grp.num_channels, generator=g) + 0.1
        grp.mask = torch.ones(grp.num_channels, dtype=torch.bool)
    for gi, c in masked:
        groups[gi].mask[c] = False
    return groups
