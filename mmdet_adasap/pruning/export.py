"""Physical export of a masked detector and the pruned-checkpoint format.

Export removes the masked channels for real with torch-pruning's surgery (on a copy; the masked model is
left as it is) and then checks itself against the masked model (:mod:`.export_check`), so a surgery that went
wrong raises before any checkpoint is written. A pruned checkpoint is an ordinary mmengine checkpoint
(``state_dict`` + ``meta``) whose ``meta['adasap_channels']`` records, for every layer whose shape changed,
its dense and pruned channel counts; the same record is written beside it as a small channel file
(``pruned.channels.json``), so that a config can name it without loading the weights. :func:`apply_channel_config`
re-shapes a freshly built dense model from that record alone (no tracing, no pruning), so the weights then load
strictly; the registered ``PrunedDetector`` (:mod:`mmdet_adasap.models`) does this when a config builds the model.
"""
import copy
import json
import os
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmdet.models.necks.ssd_neck import L2Norm
from mmengine.runner.checkpoint import CheckpointLoader
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from .channel_groups import ChannelGroups, trace
from .export_check import ExportMismatch, check_export

META_KEY = 'adasap_channels'
CHANNELS_SUFFIX = '.channels.json'
CHANNELS_SCHEMA = 'mmdet_adasap.channels/1'


def export_pruned(groups: ChannelGroups, masks: Dict[str, torch.Tensor], check: bool = True) -> nn.Module:
    """A physically smaller copy of ``groups.model`` without the channels ``masks`` drops.

    ``check``: run the copy and the masked model (``groups.model``, masks applied) on the trace input shape and
    raise :class:`ExportMismatch` naming the first layer whose kept channels differ (see :func:`check_export`),
    so that no caller can write a checkpoint that is not the model it trained.
    """
    model = copy.deepcopy(groups.model)
    dg = trace(model, groups.input_shape, groups.forward_fn)
    for g in _surgery_order(groups):
        keep = masks[g.name]
        if bool(keep.all()):
            continue
        # every copy: a root with several channels per neuron (a reshape that stacks channels) loses them all
        drop = sorted({i for name, role, index in g.members if name == g.root and role in ('out', 'dw')
                       for i in index[~keep].tolist()})
        root = model.get_submodule(g.root)
        pruner = dg.get_pruner_of_module(root)
        dg.get_pruning_group(root, pruner.prune_out_channels, drop).prune()
    dense = dict(groups.model.named_modules())
    for name, m in model.named_modules():  # keep bookkeeping attributes honest
        if isinstance(m, L2Norm):
            m.n_dims = m.weight.shape[0]
        if isinstance(m, _ConvNd) and not m.transposed:  # torch-pruning counts a twice-mapped index twice
            m.out_channels, m.in_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
        if isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
        if isinstance(m, nn.GroupNorm):  # torch-pruning leaves num_groups; whole norm groups went (block)
            per_group = dense[name].num_channels // dense[name].num_groups
            if m.num_channels % per_group:
                raise ExportMismatch(f'GroupNorm {name!r} would keep {m.num_channels} channels, not a multiple of '
                                     f'its {per_group} channels per group: the masks must remove whole norm '
                                     'groups (ChannelGroup.block, which the solver honours)')
            m.num_groups = m.num_channels // per_group
    if check:
        check_export(groups, masks, model)
    return model


def _surgery_order(groups: ChannelGroups):
    """The groups in their order, except that the groups owning parts of one root go from its last channels to
    its first: torch-pruning keeps a split's offsets as traced, so only pieces after the ones already cut may
    be cut with them (concatenation offsets it recomputes)."""
    first_seen = {}
    for i, g in enumerate(groups):
        first_seen.setdefault(g.root, i)

    def key(g):
        root = next(index for name, role, index in g.members if name == g.root and role in ('out', 'dw'))
        return first_seen[g.root], -int(root.min())
    return sorted(groups, key=key)


# ------------------------------------------------------------------------------- channel configuration
def _shape_record(m: nn.Module) -> Optional[dict]:
    if isinstance(m, _ConvNd):
        return dict(type='conv', in_channels=m.in_channels, out_channels=m.out_channels, groups=m.groups)
    if isinstance(m, nn.Linear):
        return dict(type='linear', in_channels=m.in_features, out_channels=m.out_features)
    if isinstance(m, _BatchNorm):
        return dict(type='bn', out_channels=m.num_features)
    if isinstance(m, nn.GroupNorm):
        return dict(type='gn', out_channels=m.num_channels, num_groups=m.num_groups)
    if isinstance(m, L2Norm):
        return dict(type='l2norm', out_channels=m.weight.shape[0])
    return None


def channel_config(dense: nn.Module, pruned: nn.Module) -> Dict[str, dict]:
    """``{layer name: {'type', 'dense': shape, 'pruned': shape}}`` for every layer whose shape differs."""
    pruned_modules = dict(pruned.named_modules())
    config = {}
    for name, m in dense.named_modules():
        before = _shape_record(m)
        if before is None:
            continue
        after = _shape_record(pruned_modules[name])
        if after != before:
            config[name] = dict(dense=before, pruned=after)
    return config


@torch.no_grad()
def apply_channel_config(model: nn.Module, config: Dict[str, dict]) -> nn.Module:
    """Re-shape the layers of a dense ``model`` in place to the pruned shapes in ``config``.

    Parameters keep their identity (only ``.data`` changes), so an optimizer built before still holds them.
    Values are the leading slice of the dense ones: load the pruned weights next. Raises ``ValueError`` naming the first layer
    that the model lacks or whose dense shape differs from the checkpoint's (a mismatching config).
    """
    modules = dict(model.named_modules())
    for name, rec in config.items():
        m = modules.get(name)
        if m is None:
            raise ValueError(f'pruned checkpoint re-shapes layer {name!r}, which this config\'s model does not '
                             'have: the checkpoint was pruned from a different model')
        now = _shape_record(m)
        if now == rec['pruned']:
            continue  # already pruned (e.g. loading twice)
        if now != rec['dense']:
            raise ValueError(f'pruned checkpoint expects layer {name!r} with dense shape {rec["dense"]}, '
                             f'this config builds {now}: the checkpoint was pruned from a different model')
        _reshape(m, rec['pruned'])
    return model


def _resize(t: Optional[torch.Tensor], shape) -> None:
    """Keep the leading entries along every dimension: deterministic values (the dense initialisation's), never
    uninitialised memory, for a model that is trained rather than loaded."""
    if t is not None:
        t.data = t.data[tuple(slice(0, n) for n in shape)].clone()


def _reshape(m: nn.Module, rec: dict) -> None:
    if isinstance(m, _ConvNd):
        cin, cout, groups = rec['in_channels'], rec['out_channels'], rec['groups']
        transposed = m.transposed
        m.in_channels, m.out_channels, m.groups = cin, cout, groups
        _resize(m.weight, ((cin, cout // groups) if transposed else (cout, cin // groups)) + tuple(m.kernel_size))
        _resize(m.bias, (cout,))
    elif isinstance(m, nn.Linear):
        m.in_features, m.out_features = rec['in_channels'], rec['out_channels']
        _resize(m.weight, (m.out_features, m.in_features))
        _resize(m.bias, (m.out_features,))
    elif isinstance(m, _BatchNorm):
        c = m.num_features = rec['out_channels']
        for t in (m.weight, m.bias, m.running_mean, m.running_var):
            _resize(t, (c,))
    elif isinstance(m, nn.GroupNorm):
        m.num_channels, m.num_groups = rec['out_channels'], rec['num_groups']
        for t in (m.weight, m.bias):
            _resize(t, (m.num_channels,))
    elif isinstance(m, L2Norm):
        m.n_dims = rec['out_channels']
        _resize(m.weight, (m.n_dims,))


# ------------------------------------------------------------------------------- checkpoints
def save_pruned_checkpoint(path: str, pruned: nn.Module, config: Dict[str, dict], meta: Optional[dict] = None
                           ) -> str:
    """Write an mmengine-style checkpoint of the exported model with its channel configuration in meta."""
    meta = dict(meta or {})
    meta[META_KEY] = config
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    torch.save({'meta': meta, 'state_dict': {k: v.detach().cpu() for k, v in pruned.state_dict().items()}}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    write_channel_file(channel_file_of(path), config)
    return path


# ------------------------------------------------------------------------------- the channel file
def channel_file_of(checkpoint: str) -> str:
    """The channel file written beside a pruned checkpoint: ``pruned.pth`` -> ``pruned.channels.json``."""
    return osp.splitext(checkpoint)[0] + CHANNELS_SUFFIX


def write_channel_file(path: str, config: Dict[str, dict]) -> str:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(dict(schema=CHANNELS_SCHEMA, layers=config), f, indent=1)
    os.replace(tmp, path)
    return path


def read_channel_record(source: str) -> Dict[str, dict]:
    """The channel record of a channel file (``*.json``) or of a pruned checkpoint's meta (anything else)."""
    if not isinstance(source, str):
        raise TypeError(f'channels must be the path of a channel file (*{CHANNELS_SUFFIX}) or a pruned checkpoint, '
                        f'got {source!r}')
    if '://' not in source and not osp.isfile(source):
        raise FileNotFoundError(f'channel file {source!r} does not exist (give the pruned checkpoint or the '
                                f'{CHANNELS_SUFFIX} file written beside it)')
    if source.endswith('.json'):
        with open(source) as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get('schema') != CHANNELS_SCHEMA or not isinstance(
                data.get('layers'), dict):
            raise ValueError(f'{source!r} is not a channel file (expected {{"schema": "{CHANNELS_SCHEMA}", '
                             '"layers": {...}}, as written beside every pruned checkpoint)')
        return data['layers']
    ckpt = CheckpointLoader.load_checkpoint(source, map_location='cpu', logger='silent')
    record = (ckpt.get('meta') or {}).get(META_KEY) if isinstance(ckpt, dict) else None
    if not record:
        raise ValueError(f'{source!r} is not a pruned checkpoint (no meta[{META_KEY!r}]): give the pruned.pth '
                         f'written by tools/prune.py / PruningHook / AdaSAPHook, or its {CHANNELS_SUFFIX} file')
    return record


def compose_records(first: Dict[str, dict], second: Dict[str, dict]) -> Dict[str, dict]:
    """The record of pruning a model already pruned by ``first`` again by ``second`` (relative to the first's
    dense model)."""
    out = {name: dict(rec) for name, rec in first.items()}
    for name, rec in second.items():
        out[name] = dict(dense=first[name]['dense'] if name in first else rec['dense'], pruned=rec['pruned'])
    return out
