"""Building a detector from a config + checkpoint, dense or pruned: the one place every tool does it.

A pruned checkpoint (``tools/prune.py``, ``PruningHook``, ``AdaSAPHook``) holds smaller layers plus their
channel record in ``meta['adasap_channels']``; the config still describes the dense model. Inside a Runner,
``PrunedChannelsHook`` re-shapes the model before the weights load; tools that build a model by hand (export,
reports, pruning) need the same step, and they need the same "no pretrained download" rule (the checkpoint,
or nothing, provides the weights). Both live here so that the tools cannot drift apart.

A pruned checkpoint is accepted by a *pruned-aware* config (one with ``PrunedChannelsHook``, the
``configs/pruned/`` files) - which is what ``tools/test.py`` accepts - and refused with a dense config, with
an error that names the layers and the fix. ``expect='pruned'`` lets a tool that takes the dense config
explicitly (``tools/prune_report.py --pruned``) load one anyway.
"""
import copy
import os.path as osp
import re
from typing import Optional, Tuple

import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from ..pruning.export import META_KEY, apply_channel_config

PRUNED_HOOK = 'PrunedChannelsHook'


def strip_pretrained(node):
    """Set every ``init_cfg=dict(type='Pretrained', ...)`` (and legacy ``pretrained=...``) under ``node`` (a model
    config) to ``None``, in place: the checkpoint, or random initialisation, provides the weights - never a
    download."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('pretrained') is not None:
            node['pretrained'] = None
        for v in node.values():
            strip_pretrained(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            strip_pretrained(v)
    return node


def is_pruned_aware(cfg) -> bool:
    """Whether the config loads pruned checkpoints (has ``PrunedChannelsHook`` in ``custom_hooks``)."""
    return any(isinstance(h, dict) and h.get('type') == PRUNED_HOOK for h in cfg.get('custom_hooks', None) or [])


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict (``state_dict`` + ``meta``), with a clear error for a missing file."""
    if '://' not in str(path) and not osp.isfile(path):  # local file (URLs go to mmengine's loaders)
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path!r} is not a checkpoint (expected a dict with state_dict, got {type(ckpt)})')
    if 'state_dict' not in ckpt:
        ckpt = dict(state_dict=ckpt, meta={})  # a bare state dict
    return ckpt


def _describe(channels: dict, limit: int = 3) -> str:
    items = [f'{name} ({rec["dense"].get("out_channels")} -> {rec["pruned"].get("out_channels")} channels)'
             for name, rec in list(channels.items())[:limit]]
    more = f' and {len(channels) - limit} more' if len(channels) > limit else ''
    return ', '.join(items) + more


def load_detector_checkpoint(model: nn.Module, path: str, cfg=None, expect: Optional[str] = None,
                             config_name: str = 'this config') -> dict:
    """Load ``path`` into ``model`` (strictly), re-shaping it first if the checkpoint is pruned; returns the
    checkpoint's meta.

    ``expect``: ``None`` - dense checkpoints always, pruned ones only when ``cfg`` is pruned-aware;
    ``'pruned'`` - must be a pruned checkpoint (whatever the config); ``'dense'`` - must be dense.
    """
    if expect not in (None, 'dense', 'pruned'):
        raise ValueError(f"expect must be None, 'dense' or 'pruned', got {expect!r}")
    ckpt = read_checkpoint(path)
    meta = ckpt.get('meta') or {}
    channels = meta.get(META_KEY)
    if channels is None and expect == 'pruned':
        raise ValueError(f'{path!r} is not a pruned checkpoint (no meta[{META_KEY!r}]); pass the checkpoint '
                         'written by tools/prune.py or PruningHook / AdaSAPHook (work_dir/pruned.pth)')
    if channels:
        if expect == 'dense' or (expect is None and (cfg is None or not is_pruned_aware(cfg))):
            raise ValueError(
                f'{path!r} is a pruned checkpoint (meta[{META_KEY!r}] re-shapes {len(channels)} layers: '
                f'{_describe(channels)}) but {config_name} builds the dense model (no {PRUNED_HOOK} in '
                'custom_hooks): use the matching configs/pruned/*_pruned.py config')
        apply_channel_config(model, channels)  # ValueError naming the layer if pruned from another model
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in ckpt['state_dict'].items()}
    try:
        load_state_dict(model, state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f'checkpoint {path!r} does not fit the model of {config_name}: {e}') from None
    return meta


def build_detector(cfg, checkpoint: Optional[str] = None, expect: Optional[str] = None,
                   device: str = 'cpu') -> Tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint meta)`` for a loaded mm config and an optional checkpoint.

    The config is not modified (pretrained init is stripped on a copy of ``cfg.model``).
    """
    register_all_modules()
    model = MODELS.build(strip_pretrained(copy.deepcopy(cfg.model)))
    meta = {}
    if checkpoint:
        name = cfg.filename if getattr(cfg, 'filename', None) else 'this config'
        meta = load_detector_checkpoint(model, checkpoint, cfg, expect=expect, config_name=repr(name))
    return model.to(device).eval(), meta
