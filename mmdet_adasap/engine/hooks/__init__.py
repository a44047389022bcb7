"""The three mmengine hooks: ``PruningHook`` (pruning in training), ``AdaSAPHook`` (the paper's three phases, a
``PruningHook``) and ``PrunedChannelsHook`` (loading pruned checkpoints)."""
from .pruned_channels_hook import PrunedChannelsHook
from .pruning_hook import PruningHook
from .adasap_hook import PHASES, AdaSAPHook  # noqa: I001  (subclasses PruningHook)

__all__ = ['AdaSAPHook', 'PHASES', 'PrunedChannelsHook', 'PruningHook']
