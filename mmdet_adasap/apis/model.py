"""Building a detector from a config + checkpoint, dense or pruned: the one place every tool does it.

A pruned checkpoint (``tools/prune.py``, ``PruningHook``, ``AdaSAPHook``) holds smaller layers, their channel
record in ``meta['adasap_channels']`` and a channel file beside it. A *pruned config* builds the detector at
those shapes (``model = dict(type='PrunedDetector', architecture=..., channels=...)``, the ``configs/pruned/``
files); :func:`build_detector` fills ``channels`` from the checkpoint when the config leaves it open. The
checks that a checkpoint fits the model (:func:`check_checkpoint_fits`) are the ones ``ChannelRecordHook``
applies inside every Runner, so a pruned checkpoint is never evaluated half-loaded in a dense model, nor a
dense one in a pruned model. ``expect='pruned'`` lets a tool that takes the dense config explicitly
(``tools/prune_report.py --pruned``) load a pruned checkpoint anyway (re-shaping the dense model first).
"""
import copy
import glob
import os.path as osp
import re
from typing import Optional, Tuple

import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from ..models.pruned_detector import channel_record_of, mark_pruned
from ..pruning.export import META_KEY, apply_channel_config, channel_file_of

PRUNED_MODEL = 'PrunedDetector'


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
    """Whether the config builds a pruned detector (``model.type='PrunedDetector'``)."""
    return cfg.get('model', {}).get('type') == PRUNED_MODEL


def fill_channels(cfg, checkpoint: Optional[str]):
    """A pruned config without ``model.channels`` takes them from ``checkpoint`` (the tools' CHECKPOINT,
    ``load_from`` or the checkpoint resumed from), in place; other configs are left alone."""
    if is_pruned_aware(cfg) and cfg['model'].get('channels') is None and checkpoint:
        cfg['model']['channels'] = checkpoint
    return cfg


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


def _first_mismatch(model: nn.Module, state_dict: dict):
    """(key, model shape, checkpoint shape) of the first tensor whose shape differs, or None."""
    own = model.state_dict()
    for key, value in state_dict.items():
        key = re.sub(r'^module\.', '', key)
        if key in own and hasattr(value, 'shape') and tuple(own[key].shape) != tuple(value.shape):
            return key, tuple(own[key].shape), tuple(value.shape)
    return None


def pruned_config_for(config: Optional[str]) -> str:
    """What to use to load a pruned checkpoint instead of the dense ``config``: a shipped ``configs/pruned/``
    file built on it, and the 3-line override that makes any config pruned-aware."""
    found = []
    if config and osp.isfile(config):
        base = osp.basename(config)
        root = osp.dirname(osp.dirname(osp.abspath(config)))
        for path in sorted(glob.glob(osp.join(root, 'pruned', '*.py'))):
            with open(path) as f:
                text = f.read()
                if f"/{base}'" in text and PRUNED_MODEL in text:
                    found.append(osp.relpath(path))
    shipped = f'the pruned config {found[0]}, or ' if found else ''
    base = config or '<this config>'
    return (f'{shipped}a config of 3 lines: _base_ = {base!r}; model = dict(_delete_=True, type={PRUNED_MODEL!r}, '
            'architecture={{_base_.model}}, channels=None)  (channels: the checkpoint or its channel file; '
            'tools/test.py and tools/train.py fill it from the checkpoint)')


def check_checkpoint_fits(model: nn.Module, checkpoint: dict, source: str, config: Optional[str]) -> None:
    """Refuse a checkpoint whose tensor shapes differ from ``model``'s when either side is pruned, naming the
    first mismatched layer and what to use instead. Dense into dense is mmengine's business (strict or not)."""
    record = (checkpoint.get('meta') or {}).get(META_KEY)
    own = channel_record_of(model)
    if not record and not own:
        return
    mismatch = _first_mismatch(model, checkpoint.get('state_dict', checkpoint))
    if mismatch is None:
        return
    key, here, there = mismatch
    name = repr(config) if config else 'this config'
    where = f'first mismatched layer {key!r}: {list(here)} in the model of {name}, {list(there)} in the checkpoint'
    if record and not own:
        raise ValueError(f'{source!r} is a pruned checkpoint ({len(record)} layers re-shaped) but {name} builds '
                         f'the dense model ({where}); use {pruned_config_for(config)}')
    if own and not record:
        raise ValueError(f'{source!r} is a dense checkpoint but {name} builds a pruned detector ({PRUNED_MODEL}; '
                         f'{where}): load it with the dense config, or give a pruned checkpoint')
    raise ValueError(f'{source!r} was pruned to other channels than the model of {name} ({where}): set '
                     f'model.channels to that checkpoint (or its channel file {channel_file_of(source)!r})')


def load_detector_checkpoint(model: nn.Module, path: str, expect: Optional[str] = None,
                             config_name: Optional[str] = None) -> dict:
    """Load ``path`` into ``model`` strictly; returns the checkpoint's meta.

    ``expect``: ``None`` - whatever fits the model (:func:`check_checkpoint_fits`); ``'pruned'`` - must be a
    pruned checkpoint (a dense ``model`` is re-shaped to it first); ``'dense'`` - must be dense.
    """
    if expect not in (None, 'dense', 'pruned'):
        raise ValueError(f"expect must be None, 'dense' or 'pruned', got {expect!r}")
    ckpt = read_checkpoint(path)
    meta = ckpt.get('meta') or {}
    record = meta.get(META_KEY)
    if record is None and expect == 'pruned':
        raise ValueError(f'{path!r} is not a pruned checkpoint (no meta[{META_KEY!r}]); pass the checkpoint '
                         'written by tools/prune.py or PruningHook / AdaSAPHook (work_dir/pruned.pth)')
    if record and expect == 'dense':
        raise ValueError(f'{path!r} is a pruned checkpoint; this tool takes the dense checkpoint here')
    if record and expect == 'pruned' and channel_record_of(model) is None:
        apply_channel_config(model, record)  # ValueError naming the layer if pruned from another model
        mark_pruned(model, record)
    check_checkpoint_fits(model, ckpt, path, config_name)
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in ckpt['state_dict'].items()}
    try:
        load_state_dict(model, state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f'checkpoint {path!r} does not fit the model of {config_name or "this config"}: {e}') \
            from None
    return meta


def build_detector(cfg, checkpoint: Optional[str] = None, expect: Optional[str] = None, device: str = 'cpu',
                   init_weights: bool = False) -> Tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint meta)`` for a loaded mm config and an optional checkpoint.

    The config is not modified (pretrained init is stripped on a copy of ``cfg.model``; a pruned config's open
    ``channels`` come from ``checkpoint``). ``init_weights``: run the model's initialisers (no checkpoint).
    """
    register_all_modules()
    model_cfg = fill_channels(dict(model=strip_pretrained(copy.deepcopy(cfg.model))), checkpoint)['model']
    model = MODELS.build(model_cfg)
    if init_weights:
        model.init_weights()
    meta = {}
    if checkpoint:
        name = cfg.filename if getattr(cfg, 'filename', None) else None
        meta = load_detector_checkpoint(model, checkpoint, expect=expect, config_name=name)
    return model.to(device).eval(), meta
