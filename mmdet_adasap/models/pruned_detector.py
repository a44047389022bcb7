"""``PrunedDetector``: a pruned detector built at its pruned shapes from the config, before any wrapper.

    model = dict(type='PrunedDetector', architecture=<the dense model's config>, channels='pruned.channels.json')

builds the dense architecture, re-shapes the layers the channel record names (no tracing, no pruning; the
record comes from the channel file written beside every ``pruned.pth``, or from the checkpoint's meta) and
returns the detector itself. It is registered in mmdet's ``MODELS`` as a builder function rather than a module
class: what the Runner gets is the architecture's own class (``SingleStageDetector``, ``FasterRCNN``, ...) with
its own ``state_dict`` keys and methods, so mmengine wraps it with DDP, trains, tests, resumes and exports it
like any detector, a pruned checkpoint loads into it strictly, and its checkpoints load in every tool that
builds the same config. (A wrapper module around the detector would prefix every key and hide the detector's
``data_preprocessor`` / ``test_step`` behind forwarding code.) The record stays on the instance
(:data:`CHANNELS_ATTR`): ``ChannelRecordHook`` writes it into every checkpoint's meta and refuses checkpoints
whose shapes do not fit.
"""
from typing import Dict, Optional

import torch.nn as nn
from mmdet.registry import MODELS

from mmdet_adasap.pruning.export import CHANNELS_SUFFIX, apply_channel_config, read_channel_record

#: the attribute holding a pruned detector's channel record (layer -> dense / pruned shape)
CHANNELS_ATTR = 'adasap_channels'


def channel_record_of(model: nn.Module) -> Optional[Dict[str, dict]]:
    """The channel record of a pruned detector (None for a dense one)."""
    return getattr(model, CHANNELS_ATTR, None) or None


def mark_pruned(model: nn.Module, record: Dict[str, dict]) -> nn.Module:
    setattr(model, CHANNELS_ATTR, record)
    return model


@MODELS.register_module()
def PrunedDetector(architecture: dict, channels: Optional[str] = None) -> nn.Module:  # noqa: N802 (a type)
    """The detector of ``architecture`` (a dense model config) at the shapes of ``channels`` (a pruned
    checkpoint or its channel file). Weights come from ``load_from`` / the checkpoint given to the tools."""
    if not isinstance(architecture, dict) or 'type' not in architecture:
        raise TypeError(f'PrunedDetector: architecture must be the dense model\'s config (a dict with a type), '
                        f'got {architecture!r}')
    if architecture['type'] == 'PrunedDetector':
        raise ValueError('PrunedDetector: architecture is itself a PrunedDetector; give the dense model\'s config '
                         'and the channel file of the latest pruning (its record is relative to the dense model)')
    if channels is None:
        raise ValueError(f'PrunedDetector needs channels=<pruned.pth or its {CHANNELS_SUFFIX} file>: this '
                         'package\'s tools/train.py and tools/test.py take it from load_from / the checkpoint; '
                         'elsewhere pass --cfg-options model.channels=PATH')
    record = read_channel_record(channels)
    model = MODELS.build(architecture)
    try:
        apply_channel_config(model, record)
    except ValueError as err:
        raise ValueError(f'PrunedDetector: the channel record {channels!r} does not fit the architecture '
                         f'{architecture["type"]}: {err}') from None
    return mark_pruned(model, record)
