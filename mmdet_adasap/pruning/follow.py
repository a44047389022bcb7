"""The pruner's channel groups, or one error naming every module the trace cannot follow, with a checked way out.

:func:`~.channel_groups.build_channel_groups` refuses a model in which some channels cannot be followed (an
index mapped through a reshape or a functional use of weights, a module type with channel parameters that this
package cannot slice, a grouped conv), listing all such modules at once. Following the messages one module at
a time would take a user as many tries as there are modules, and may still not end in a model that exports.
So the pruner does the search itself: it leaves the listed modules alone (the smallest module names that cover
them), traces again until nothing is left to refuse, then masks half of every remaining group on a copy and
exports it with the export's self-check. Only a value that passes that is offered as *verified*.
"""
import copy
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from .channel_groups import SUPPORTED_TYPES, ChannelGroups, UnfollowableChannels, build_channel_groups
from .export import export_pruned
from .export_check import ExportMismatch
from .masks import ChannelMasks


def build_followed_groups(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None,
                          ignored_layers: Sequence[str] = (), prunable: Optional[Sequence[str]] = None,
                          attempts: int = 4) -> ChannelGroups:
    """:func:`~.channel_groups.build_channel_groups`, whose :class:`UnfollowableChannels` error carries an
    ``ignored_layers`` value checked to trace and export (see the module docstring)."""
    try:
        return build_channel_groups(model, input_shape, forward_fn, ignored_layers, prunable)
    except UnfollowableChannels as err:
        raise _with_checked_way_out(err, model, input_shape, forward_fn, list(ignored_layers), prunable,
                                    attempts) from None


def _with_checked_way_out(err, model, input_shape, forward_fn, ignored, prunable, attempts) -> UnfollowableChannels:
    problems = dict(err.problems)
    name = type(model).__name__
    for _ in range(attempts):
        suggestion = ignored + covering_names(model, sorted(problems))
        try:
            groups = build_channel_groups(model, input_shape, forward_fn, suggestion, prunable)
        except UnfollowableChannels as more:  # leaving modules alone can expose others
            problems.update(more.problems)
            continue
        failure = half_prune_fails(model, groups, forward_fn, suggestion, prunable)
        if failure is None:
            return UnfollowableChannels(name, problems, suggestion, verified=(
                f'with it the model traces and a prune of half of each of its {len(groups)} groups exports '
                'exactly'))
        return UnfollowableChannels(name, problems, suggestion, verified=None, note=(
            f'with it the model traces, but a prune of half of every group does not export: {failure}'))
    return UnfollowableChannels(name, problems, ignored + covering_names(model, sorted(problems)), note=(
        f'leaving them alone still exposed new ones after {attempts} tries'))


def covering_names(model: nn.Module, names: Sequence[str]) -> List[str]:
    """The fewest module names that cover ``names``: a parent replaces its children when every module with
    channels below it (conv, linear, norm, scale) is one of ``names``."""
    wanted = set(names)
    channelled = {n for n, m in model.named_modules() if isinstance(m, SUPPORTED_TYPES) or
                  any(True for _ in m.parameters(recurse=False))}
    out = set()
    for n in wanted:
        best, parts = n, n.split('.')
        for depth in range(len(parts) - 1, 0, -1):
            parent = '.'.join(parts[:depth])
            below = {c for c in channelled if c.startswith(parent + '.')}
            if below and below <= wanted:
                best = parent
            else:
                break
        out.add(best)
    return sorted(n for n in out if not any(n.startswith(o + '.') for o in out))


def half_prune_fails(model: nn.Module, groups: ChannelGroups, forward_fn, ignored, prunable) -> Optional[str]:
    """None if masking half of every group (whole blocks) on a copy of ``model`` exports exactly; else why not."""
    twin = copy.deepcopy(model)
    twin_groups = build_channel_groups(twin, groups.input_shape, forward_fn, ignored, prunable)
    masks = {}
    for g in twin_groups:
        kept = max(g.block, g.size // 2 // g.block * g.block)
        masks[g.name] = torch.arange(g.size) < kept
    m = ChannelMasks(twin_groups)
    m.set(masks)
    m.apply()
    try:
        export_pruned(twin_groups, masks, check=True)
    except ExportMismatch as e:
        return str(e)
    return None
