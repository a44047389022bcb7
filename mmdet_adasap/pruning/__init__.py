"""Structured channel pruning for mmdet detectors (AdaSAP's neuron removal phase).

One file per concept, imports running one way (each file imports only files listed before it):
``channel_groups`` (coupled channels via torch-pruning, the traced part's shapes and forward), ``importance``
(criteria, registered in mmdet's TASK_UTILS), ``masks`` (soft pruning), ``export_check`` / ``export`` (physical
surgery, pruned checkpoints), ``latency_table`` (a measured latency lookup table: fingerprint, checks,
prediction, load / save), ``targets`` (cost models + solvers), ``schedule`` (one-shot / HALP exponential),
``pruner`` (``ChannelPruner``), ``surgery``, ``ingraph`` (in-graph module timing), ``latency_measure``
(building and calibrating a lookup table). Timing itself is :mod:`mmdet_adasap.utils.timing`. The mmengine hooks live in :mod:`mmdet_adasap.engine.hooks`.
"""
from .channel_groups import ChannelGroup, ChannelGroups, build_channel_groups
from .export import (apply_channel_config, channel_config, channel_file_of, export_pruned, read_channel_record,
                     save_pruned_checkpoint)
from .importance import BaseImportance, BNScaleImportance, L2Importance, TaylorImportance, build_importance
from .masks import ChannelMasks
from .pruner import ChannelPruner
from .schedule import PruningSchedule, build_schedule
from .targets import FlopsCost, LatencyCost, ParamsCost, build_cost, solve

__all__ = [
    'ChannelGroup', 'ChannelGroups', 'build_channel_groups', 'apply_channel_config',
    'channel_config', 'channel_file_of', 'export_pruned', 'read_channel_record', 'save_pruned_checkpoint',
    'BaseImportance', 'BNScaleImportance', 'L2Importance', 'TaylorImportance', 'build_importance',
    'ChannelMasks', 'ChannelPruner', 'PruningSchedule', 'build_schedule', 'FlopsCost', 'LatencyCost',
    'ParamsCost', 'build_cost', 'solve',
]


def __getattr__(name):
    if name == 'load_pruned_checkpoint':
        raise AttributeError('mmdet_adasap.pruning.load_pruned_checkpoint is gone: build the detector with '
                             'mmdet_adasap.apis.build_detector(cfg, checkpoint) (or load into a model with '
                             'mmdet_adasap.apis.load_detector_checkpoint), which re-shape and load in one place')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
