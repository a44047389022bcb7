"""Registered models: ``PrunedDetector`` (a pruned checkpoint's detector, built at its pruned shapes)."""
from .pruned_detector import CHANNELS_ATTR, PrunedDetector, channel_record_of

__all__ = ['CHANNELS_ATTR', 'PrunedDetector', 'channel_record_of']
