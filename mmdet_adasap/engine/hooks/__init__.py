"""The mmengine hooks: ``PruningHook`` (pruning in training), ``AdaSAPHook`` (the paper's three phases, a
``PruningHook``), ``ChannelRecordHook`` (pruned shapes in checkpoints, no half-loaded models) and
``RandomStateHook`` (exact resume); the last two join every Runner (:mod:`mmdet_adasap.engine.plugin_hooks`).
``PrunedChannelsHook`` is retired (refused with the way that replaces it)."""
from .channel_record_hook import ChannelRecordHook
from .pruned_channels_hook import PrunedChannelsHook
from .pruning_hook import PruningHook
from .random_state_hook import RandomStateHook
from .adasap_hook import PHASES, AdaSAPHook  # noqa: I001  (subclasses PruningHook)

__all__ = ['AdaSAPHook', 'ChannelRecordHook', 'PHASES', 'PrunedChannelsHook', 'PruningHook', 'RandomStateHook']
