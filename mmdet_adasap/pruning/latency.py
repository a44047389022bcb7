"""Latency measured on the machine that will run the model (HALP's lookup-table approach).

FLOPs are not latency (see ../shared/notes/STACK.md: halving channels gave no batch-1 GPU speed-up), so a
latency target needs measurements: every prunable layer is timed alone at a grid of (in, out) channel counts
at its traced input size; the rest of the network is the measured full-model latency minus the table's dense
sum. The table is plain JSON so it can be measured once per machine and reused.
"""
import json
import statistics
import time
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.utils import ProgressBar

from .channel_groups import ChannelGroups, LayerShape


def time_call(fn: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA synchronised when available)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure_model_latency(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None,
                          repeats: int = 10, warmup: int = 2) -> float:
    """Median latency (ms) of ``forward_fn(model, x)`` (default ``model._forward``) in eval mode."""
    from .channel_groups import default_forward
    forward_fn = forward_fn or default_forward(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(*input_shape, device=device)
    try:
        return time_call(lambda: forward_fn(model, x), repeats, warmup)
    finally:
        model.train(was_training)


def _grid(channels: int, points: int, round_to: int) -> list:
    values = {channels}
    for k in range(1, points):
        c = max(round_to, int(round(channels * k / points / round_to)) * round_to)
        values.add(min(c, channels))
    return sorted(values)


def _layer_module(layer: LayerShape, cin: int, cout: int, dense: nn.Module) -> nn.Module:
    if layer.kind == 'linear':
        return nn.Linear(cin, cout, bias=layer.bias)
    groups = cout if layer.depthwise else layer.groups
    if layer.depthwise:
        cin = cout
    return type(dense)(cin, cout, dense.kernel_size, dense.stride, dense.padding, dense.dilation, groups,
                       bias=layer.bias)


def measure_latency_table(groups: ChannelGroups, points: int = 4, round_to: int = 8, repeats: int = 5,
                          show_progress: bool = True) -> dict:
    """Per-layer latency on a ``points`` x ``points`` grid of (in, out) channels for every layer whose
    channels can change, plus ``rest_ms``; on the device the model's parameters live on."""
    device = next(groups.model.parameters()).device
    layers = {n: l for n, l in groups.layers.items() if l.in_group or l.out_group}
    table = {'input_shape': list(groups.input_shape), 'device': str(device), 'layers': {}}
    bar = ProgressBar(len(layers)) if show_progress else None
    for name, layer in layers.items():
        dense = groups.model.get_submodule(name)
        cins = _grid(layer.in_channels, points, round_to) if layer.in_group and not layer.depthwise else \
            [layer.in_channels]
        couts = _grid(layer.out_channels, points, round_to) if layer.out_group else [layer.out_channels]
        ms = []
        for cin in cins:
            row = []
            for cout in couts:
                m = _layer_module(layer, cin, cout, dense).to(device).eval()
                shape = list(layer.in_shape)
                shape[1 if layer.kind == 'conv' else -1] = cout if layer.depthwise else cin
                x = torch.randn(*shape, device=device)
                row.append(time_call(lambda: m(x), repeats, warmup=1))
            ms.append(row)
        table['layers'][name] = {'cin': cins, 'cout': couts, 'ms': ms}
        if bar is not None:
            bar.update()
    full = measure_model_latency(groups.model, groups.input_shape, groups.forward_fn, repeats=repeats)
    dense_sum = sum(interpolate(e, groups.layers[n].in_channels, groups.layers[n].out_channels)
                    for n, e in table['layers'].items())
    table['dense_ms'] = full
    table['rest_ms'] = max(full - dense_sum, 0.0)
    return table


def _axis(values, v):
    """Index pair and weight for linear interpolation along one (sorted) axis, clamped at the ends."""
    if len(values) == 1 or v <= values[0]:
        return 0, 0, 0.0
    for i in range(1, len(values)):
        if v <= values[i]:
            return i - 1, i, (v - values[i - 1]) / (values[i] - values[i - 1])
    return len(values) - 1, len(values) - 1, 0.0


def interpolate(entry: dict, cin: int, cout: int) -> float:
    """Bilinear interpolation of one layer's table at (cin, cout)."""
    i0, i1, a = _axis(entry['cin'], cin)
    j0, j1, b = _axis(entry['cout'], cout)
    ms = entry['ms']
    top = ms[i0][j0] * (1 - b) + ms[i0][j1] * b
    bottom = ms[i1][j0] * (1 - b) + ms[i1][j1] * b
    return top * (1 - a) + bottom * a


def table_terms(table: dict, groups: ChannelGroups):
    """(constant, [(term fn, groups it depends on)]) of the table's prediction, for :class:`~.targets.LatencyCost`."""
    from .targets import layer_channels
    terms = []
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        terms.append((lambda keep, e=entry, l=layer: interpolate(e, *layer_channels(l, keep)[:2]),
                      tuple(g for g in (layer.in_group, layer.out_group) if g)))
    return table['rest_ms'], terms


def check_table(table: dict, groups: ChannelGroups) -> None:
    """The table must cover every layer whose channels can change, at the traced input shape."""
    if list(table.get('input_shape', [])) != list(groups.input_shape):
        raise ValueError(f'latency table measured at input {table.get("input_shape")}, the pruner traces at '
                         f'{list(groups.input_shape)}: measure a table for this input')
    for name, layer in groups.layers.items():
        if (layer.in_group or layer.out_group) and name not in table.get('layers', {}):
            raise ValueError(f'latency table has no entry for prunable layer {name!r}: it was measured for a '
                             'different model; measure it again')


def save_table(table: dict, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(table, f, indent=1)


def load_table(path: str) -> dict:
    with open(path) as f:
        return json.load(f)
