"""Which single channels go together: the neurons of a traced detector, read off torch-pruning's groups.

Torch-Pruning's ``DependencyGraph`` follows concatenation, split and repeated inputs with index mappings: the
group it returns for a root layer lists, for every coupled layer, which of *its* channels go with which root
channel. Its groups are not a partition of the network's channels, though:

* a concatenation's consumer owns a slice of its input channels in each producer's group;
* a tensor concatenated with itself (SPP: ``cat([x, pool5(x), pool9(x), pool13(x)])``) gives one root channel
  several input channels of the consumer;
* a root whose channels come from several producers (channel attention over a concatenation, RTMDet's CSP
  layer) spans several independent sets of neurons, and which layer torch-pruning makes the root depends on
  the order it traced the modules in.

So the groups are used for what they are exact about, the index mapping of each dependency, and the channels
are partitioned here: every (node, side, channel) that any group couples to a root channel is joined with it
(union-find), and each resulting class is one neuron: the channels that must go together, no more, whatever
torch-pruning chose as roots. :mod:`.channel_groups` then gathers classes with the same member layers into one
prunable group. A class whose members cannot be followed (an index beyond a layer's channels: a reshape or a
functional use of weights the trace mapped blindly; an unsupported module with parameters; a grouped conv) is
flagged here and refused there, all such modules in one error.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import torch.nn as nn
import torch_pruning as tp
from mmdet.models.necks.ssd_neck import L2Norm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

#: module types whose channels this package knows how to mask, count and reshape
SUPPORTED_TYPES = (_ConvNd, nn.Linear, _BatchNorm, nn.GroupNorm, L2Norm)
LAYER_TYPES = (_ConvNd, nn.Linear)  # layers that produce (root) and consume channels
#: (module name, role), role in {'out', 'in', 'dw', 'bn', 'gn', 'scale'}
Key = Tuple[str, str]
OUT_ROLES = ('out', 'dw', 'bn', 'gn', 'scale')  # roles whose channels are the module's output channels


@dataclass
class ChannelClass:
    """One neuron: the channels of every member layer that go with it."""
    channels: Dict[Key, List[int]] = field(default_factory=dict)  # member -> its channels (sorted)
    reaches_output: bool = False  # a traced output takes this channel
    layer_nodes: Set = field(default_factory=set)  # tp nodes of conv/linear members that produce it
    problems: Dict[str, str] = field(default_factory=dict)  # module -> why it cannot be followed

    def signature(self) -> Tuple[Tuple[Key, int], ...]:
        """The member layers and how many channels each has in the neuron: equal for the neurons of a group."""
        return tuple(sorted((k, len(c)) for k, c in self.channels.items()))


class _UnionFind:
    def __init__(self):
        self.parent: Dict = {}

    def find(self, x):
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def neuron_classes(dg: tp.DependencyGraph, tp_groups, name_of: Dict[nn.Module, str],
                   param_owner: Dict[nn.Parameter, Tuple[str, nn.Module]]) -> List[ChannelClass]:
    """Partition every channel the torch-pruning groups ``tp_groups`` couple into neurons."""
    uf, nodes = _UnionFind(), {}
    for g in tp_groups:
        root = (id(g[0].dep.target), True)
        for item in g:
            node = item.dep.target
            side = (id(node), bool(dg.is_out_channel_pruning_fn(item.dep.handler)))
            nodes.setdefault(side, node)
            for idx, root_idx in zip(item.idxs, item.root_idxs):
                uf.union((root, int(root_idx)), (side, int(idx)))
    members: Dict = {}
    for x in list(uf.parent):
        members.setdefault(uf.find(x), []).append(x)
    classes = []
    for items in members.values():
        c = ChannelClass()
        for (node_id, is_out), channel in items:
            _add(c, nodes[(node_id, is_out)], is_out, channel, name_of, param_owner)
        c.channels = {k: sorted(v) for k, v in c.channels.items()}
        if c.channels:
            classes.append(c)
    return classes


def _add(c: ChannelClass, node, is_out: bool, channel: int, name_of, param_owner) -> None:
    """Record one (node, side, channel) of a neuron: a member channel, an output, or a problem."""
    if node.type == tp.ops.OPTYPE.OUTPUT:
        c.reaches_output = True
        return
    key, count, why = _member(node, is_out, name_of, param_owner)
    if why is not None:
        c.problems.setdefault(key[0], why)
        return
    if key is None:
        return  # a functional op (add, cat, relu...) or a module without parameters
    if channel >= count:
        side = 'output' if key[1] in OUT_ROLES else 'input'
        c.problems.setdefault(key[0], f'channel {channel} mapped beyond its {count} {side} channels (through a '
                                      'reshape or a functional use of weights)')
        return
    c.channels.setdefault(key, set()).add(channel)  # a set while the class is built, sorted at the end
    if key[1] in ('out', 'dw') and isinstance(node.module, LAYER_TYPES):
        c.layer_nodes.add(node)


def _member(node, is_out: bool, name_of, param_owner) -> Tuple[Optional[Key], int, Optional[str]]:
    """(member key, channel count on that side, why it cannot be followed or None)."""
    target = node.module
    if isinstance(target, nn.Parameter):
        name, owner = param_owner.get(target, ('?', None))
        if not isinstance(owner, L2Norm):
            return (name, 'scale'), 0, f'unsupported module type {type(owner).__name__} (a channel parameter)'
        return (name, 'scale'), target.shape[0], None
    name = name_of.get(target)
    if name is None:
        return None, 0, None
    if not isinstance(target, SUPPORTED_TYPES):
        if any(True for _ in target.parameters(recurse=False)):
            return (name, 'out'), 0, f'unsupported module type {type(target).__name__}'
        return None, 0, None
    if isinstance(target, _BatchNorm):
        return (name, 'bn'), target.num_features, None
    if isinstance(target, nn.GroupNorm):
        return (name, 'gn'), target.num_channels, None
    if isinstance(target, L2Norm):
        return (name, 'scale'), target.weight.shape[0], None
    if isinstance(target, _ConvNd) and target.groups > 1:
        if not target.groups == target.in_channels == target.out_channels:
            return (name, 'dw'), 0, f'grouped conv (groups={target.groups}, not depthwise)'
        return (name, 'dw'), target.out_channels, None
    if is_out:
        return (name, 'out'), target.out_channels if isinstance(target, _ConvNd) else target.out_features, None
    return (name, 'in'), target.in_channels if isinstance(target, _ConvNd) else target.in_features, None
