"""Latency lookup tables measured on the machine that will run the model (HALP's approach), and their checks.

FLOPs are not latency (see ../shared/notes/STACK.md: halving channels gave no batch-1 GPU speed-up), so a
latency target needs measurements. A table holds:

* every prunable conv/linear layer timed alone on a ``points`` x ``points`` grid of (in, out) channels at its
  traced input size and the table's batch (bilinear interpolation in between: a conv's time is close to
  bilinear in (in, out), its MACs exactly so);
* a *calibration* of the sum against whole exported models: the isolated timings alone mispredict the whole
  model (on the demo CPU the old table put 5.6 of 14.0 ms in a constant "rest" and predicted 0.83 of dense for
  a model that ran at 0.72). Two things were missing: what runs *between* the layers (BN, ReLU, residual adds,
  pooling) scales with the activations, i.e. with kept channels x positions, not a constant; and a layer timed
  in isolation runs at a different speed than inside the graph (caches, allocator). So the table measures
  the dense model and a few pruned exports (uniform and global-ranking prunes at several FLOPs levels) and fits
  ``latency = const + conv_scale * sum(layer timings) + act_ms * activation volume`` (least squares on
  relative error, non-negative), the model :class:`~.targets.LatencyCost` then evaluates; a second round adds
  the latency knapsack's own picks under the first fit (an optimiser seeks out where a cost model is wrong, so
  the fit must be right where the targets land). All whole-model timings are round-robin with the dense model,
  so a change of machine load scales every one alike and the fitted *ratios* stay right;
* a fingerprint (model signature, input size, batch, device, threads): a table from another model or input is
  refused naming both, and batch / device / threads are checked against what the target asks for.

The table is plain JSON, built once per machine with ``tools/build_latency_table.py``.
"""
import hashlib
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.utils import ProgressBar

from .channel_groups import ChannelGroups, LayerShape

#: FLOPs fractions of the calibration exports: (ranking, ratio)
CALIBRATION = (('per_group', 0.2), ('per_group', 0.45), ('per_group', 0.7), ('global', 0.3), ('global', 0.6))
#: latency fractions of the second calibration round: the knapsack's own picks under the first fit
REFINE = (0.45, 0.6, 0.75)


def time_round_robin(fns: Sequence[Callable[[], object]], repeats: int = 10, warmup: int = 1,
                     sync: bool = False) -> List[float]:
    """Median wall time (ms) of each ``fn()``, timed in turns (one call of each per round) so that changes in
    machine load hit all of them alike: their *ratios* stay meaningful on a busy machine."""
    sync_fn = torch.cuda.synchronize if sync else (lambda: None)
    times = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn()
        sync_fn()
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                sync_fn()
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def time_call(fn: Callable[[], object], repeats: int = 10, warmup: int = 2, sync: bool = False) -> float:
    """Median wall time of ``fn()`` in milliseconds (``sync``: CUDA synchronised around each call)."""
    return time_round_robin([fn], repeats, warmup, sync)[0]


def model_call(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None):
    """A no-argument call of ``forward_fn(model, x)`` (default: the traced part) on a random input, in eval mode."""
    from .channel_groups import default_forward
    forward_fn = forward_fn or default_forward(model)
    model.eval()
    x = torch.randn(*input_shape, device=next(model.parameters()).device)
    return lambda: forward_fn(model, x)


def measure_model_latency(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None,
                          repeats: int = 10, warmup: int = 2) -> float:
    """Median latency (ms) of ``forward_fn(model, x)`` (default: the traced part) in eval mode."""
    was_training = model.training
    try:
        call = model_call(model, input_shape, forward_fn)
        return time_call(call, repeats, warmup, sync=next(model.parameters()).device.type == 'cuda')
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------------------------ fingerprint
def model_signature(groups: ChannelGroups) -> str:
    """A short hash of every traced layer's name and dense shape and of the prunable groups."""
    parts = [f'{n}:{l.kind}:{l.in_channels}:{l.out_channels}:{l.groups}:{l.kernel_elems}:{l.positions}'
             for n, l in sorted(groups.layers.items())]
    parts += [f'group:{g.name}:{g.size}' for g in groups]
    return hashlib.sha1('\n'.join(parts).encode()).hexdigest()[:12]


def fingerprint(groups: ChannelGroups, batch: int, device: str, threads: int) -> dict:
    return dict(model=type(groups.model).__name__, signature=model_signature(groups),
                input_size=list(groups.input_shape[1:]), batch=int(batch), device=str(device), threads=int(threads))


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'cuda:{torch.cuda.get_device_name(device)}'
    return 'cpu'


def check_table(table: dict, groups: ChannelGroups, expect: Optional[dict] = None) -> None:
    """Refuse a table from another model or input (always), or batch / device / threads other than
    ``expect`` asks for (keys of the latency target: ``batch``, ``device``, ``threads``); name both sides."""
    fp = table.get('fingerprint')
    if not isinstance(fp, dict):
        raise ValueError('latency table has no fingerprint (model, input, batch, device, threads): it predates '
                         'tools/build_latency_table.py; build it again with that tool')
    ours = dict(model=type(groups.model).__name__, signature=model_signature(groups),
                input_size=list(groups.input_shape[1:]))
    for key in ('signature', 'input_size'):
        if fp.get(key) != ours[key]:
            raise ValueError(f'latency table was measured for model {fp.get("model")} (signature '
                             f'{fp.get("signature")}) at input {fp.get("input_size")}; this pruner has model '
                             f'{ours["model"]} (signature {ours["signature"]}) at input {ours["input_size"]}: '
                             'build a table for this model and input')
    for key, value in (expect or {}).items():
        have = fp.get(key)
        if key == 'device' and isinstance(have, str) and isinstance(value, str):
            ok = have == value or have.split(':')[0] == value  # 'cuda' accepts any CUDA device name
        else:
            ok = have == value
        if not ok:
            raise ValueError(f'latency table was measured with {key}={have!r}, the latency target asks for '
                             f'{key}={value!r}: build a table with that {key} (tools/build_latency_table.py)')
    missing = [n for n, l in groups.layers.items() if (l.in_group or l.out_group) and n not in table['layers']]
    if missing:
        raise ValueError(f'latency table has no entry for prunable layer {missing[0]!r} ({len(missing)} missing): '
                         'build the table again for this model')


# ------------------------------------------------------------------------------------------ prediction
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


def _activation(layer: LayerShape, cout: int) -> float:
    """Output activation volume (millions of elements per image) of a layer: what BN/ReLU/adds then touch."""
    return cout * layer.positions / 1e6


def _features(table: dict, groups: ChannelGroups, keep: Dict[str, int]):
    from .targets import layer_channels
    conv = act = 0.0
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        cin, cout, _ = layer_channels(layer, keep)
        conv += interpolate(entry, cin, cout)
        if layer.out_group:
            act += _activation(layer, cout)
    return conv, act


def table_terms(table: dict, groups: ChannelGroups):
    """(constant, [(term fn, groups it depends on)]) of the table's prediction, for :class:`~.targets.LatencyCost`."""
    from .targets import layer_channels
    fit = table['fit']
    scale, act_ms = fit['conv_scale'], fit['act_ms']
    terms = []
    for name, entry in table['layers'].items():
        layer = groups.layers[name]

        def fn(keep, e=entry, l=layer):
            cin, cout, _ = layer_channels(l, keep)
            return scale * interpolate(e, cin, cout) + (act_ms * _activation(l, cout) if l.out_group else 0.0)
        terms.append((fn, tuple(g for g in (layer.in_group, layer.out_group) if g)))
    return fit['const_ms'], terms


def fit_calibration(points: List[tuple]) -> dict:
    """Non-negative least squares of measured = const + conv_scale * conv + act_ms * act over the calibration
    points [(conv sum, activation volume, measured ms)], with the relative errors it leaves."""
    from scipy.optimize import nnls
    a = np.array([[1.0, c, v] for c, v, _ in points])
    y = np.array([m for _, _, m in points])
    w = 1.0 / y  # relative error: small models count as much as the dense one
    coef, _ = nnls(a * w[:, None], y * w)
    pred = a @ coef
    return dict(const_ms=float(coef[0]), conv_scale=float(coef[1]), act_ms=float(coef[2]),
                rel_errors=[float(e) for e in (pred - y) / y])


# ------------------------------------------------------------------------------------------ measurement
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


def _measure_layer(layer, dense, batch, device, points, round_to, repeats) -> dict:
    """The layer at every grid point, timed round-robin (the grid's shape survives load changes)."""
    cins = _grid(layer.in_channels, points, round_to) if layer.in_group and not layer.depthwise else \
        [layer.in_channels]
    couts = _grid(layer.out_channels, points, round_to) if layer.out_group else [layer.out_channels]
    calls = []
    for cin in cins:
        for cout in couts:
            m = _layer_module(layer, cin, cout, dense).to(device).eval()
            shape = [batch] + list(layer.in_shape[1:])
            shape[1 if layer.kind == 'conv' else -1] = cout if layer.depthwise else cin
            x = torch.randn(*shape, device=device)
            calls.append(lambda m=m, x=x: m(x))
    flat = time_round_robin(calls, repeats, warmup=1, sync=device.type == 'cuda')
    return {'cin': cins, 'cout': couts, 'ms': [flat[i * len(couts):(i + 1) * len(couts)] for i in range(len(cins))]}


def _calibration_configs(groups: ChannelGroups, round_to: int, table: Optional[dict] = None
                         ) -> List[Dict[str, torch.Tensor]]:
    """Pass 1 (``table=None``): uniform and global FLOPs prunes (``CALIBRATION``). Pass 2: the latency
    knapsack's own picks with the pass-1 table (``REFINE``), so that the fit is right where targets land."""
    from .importance import build_importance
    from .targets import FlopsCost, LatencyCost, solve
    scores = build_importance('l2')(groups)
    if table is None:
        flops = FlopsCost(groups)
        return [solve(groups, scores, flops, r * flops.dense, round_to, ranking) for ranking, r in CALIBRATION]
    latency, out = LatencyCost(groups, table), []
    for r in REFINE:
        try:
            out.append(solve(groups, scores, latency, r * latency.dense, round_to, 'knapsack'))
        except ValueError:  # below the smallest model: nothing to calibrate there
            pass
    return out


def _time_exports(groups, configs, shape, repeats, bar) -> tuple:
    """Kept counts and round-robin medians of the dense model (first) and each configuration's export."""
    from .export import export_pruned
    keeps, calls = [{}], [model_call(groups.model, shape, groups.forward_fn)]
    for masks in configs:
        keeps.append({k: int(m.sum()) for k, m in masks.items()})
        # only the shapes are timed (the unmasked model's values are exported as they are): no self-check
        calls.append(model_call(export_pruned(groups, masks, check=False), shape, groups.forward_fn))
        bar and bar.update()
    sync = next(groups.model.parameters()).device.type == 'cuda'
    return keeps, time_round_robin(calls, repeats, warmup=1, sync=sync)


def measure_latency_table(groups: ChannelGroups, batch: Optional[int] = None, threads: Optional[int] = None,
                          points: int = 5, round_to: int = 8, repeats: int = 5, model_repeats: int = 20,
                          calibrate: bool = True, show_progress: bool = True) -> dict:
    """Measure a table for ``groups`` on the device the model's parameters live on, with ``threads`` intra-op
    threads (default: the current setting) at ``batch`` (default: the trace batch); see the module docstring."""
    device = next(groups.model.parameters()).device
    batch = int(batch or groups.input_shape[0])
    before = torch.get_num_threads()
    threads = int(threads or before)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        layers = {n: l for n, l in groups.layers.items() if l.in_group or l.out_group}
        configs = _calibration_configs(groups, round_to) if calibrate else []
        bar = ProgressBar(len(layers) + len(configs) + len(REFINE) * calibrate) if show_progress else None
        table = {'fingerprint': fingerprint(groups, batch, device_name(device), threads), 'layers': {}}
        for name, layer in layers.items():
            table['layers'][name] = _measure_layer(layer, groups.model.get_submodule(name), batch, device,
                                                   points, round_to, repeats)
            bar and bar.update()
        shape = (batch,) + tuple(groups.input_shape[1:])
        keeps, measured = _time_exports(groups, configs, shape, model_repeats, bar)
        dense_ms = measured[0]
        points_ = [(*_features(table, groups, keep), ms) for keep, ms in zip(keeps, measured)]
        table['fit'] = dict(const_ms=max(dense_ms - points_[0][0], 0.0), conv_scale=1.0, act_ms=0.0,
                            rel_errors=[])  # uncalibrated: isolated timings as they are, the rest constant
        if calibrate:
            table['fit'] = fit_calibration(points_)
            refine = _calibration_configs(groups, round_to, table)
            keeps, again = _time_exports(groups, refine, shape, model_repeats, bar)
            scale = dense_ms / again[0]  # put the second round on the first round's scale (load drifts)
            points_ += [(*_features(table, groups, k), ms * scale) for k, ms in zip(keeps[1:], again[1:])]
            table['fit'] = fit_calibration(points_)
        table['calibration'] = [dict(conv_ms=c, act=v, measured_ms=m) for c, v, m in points_]
        table['dense_ms'] = dense_ms
    finally:
        torch.set_num_threads(before)
    table['build_s'] = time.perf_counter() - t0
    return table


def save_table(table: dict, path: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(table, f, indent=1)
    os.replace(tmp, path)  # never leave a half-written table behind


def load_table(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'latency table {path!r} does not exist: build it with '
                                f'tools/build_latency_table.py CONFIG --out {path}')
    with open(path) as f:
        return json.load(f)
