"""Latency lookup tables measured on the machine that will run the model (HALP's approach), and their checks.

FLOPs are not latency (see ../shared/notes/STACK.md: halving channels gave no batch-1 GPU speed-up), so a
latency target needs measurements. A table holds:

* every prunable conv/linear layer timed alone on a ``points`` x ``points`` grid of (in, out) channels at its
  traced input size and the table's batch (bilinear interpolation in between: a conv's time is close to
  bilinear in (in, out), its MACs exactly so);
* a *calibration* against whole exported models: the isolated timings alone mispredict the whole model (on
  the demo CPU the first table put 5.6 of 14.0 ms in a constant "rest" and predicted 0.83 of dense for a
  model that ran at 0.72). A layer runs at another speed inside the graph than alone, and much of the time is
  in what runs between the layers (norms, activations, the stem's pool), which scales with the channels that
  flow through it. So the table times the dense model and a few pruned exports (uniform and global-ranking
  prunes at several FLOPs levels) whole *and* module by module inside the graph, fits every module's in-graph
  time on those configurations (:mod:`.ingraph`: a prunable layer affine in its isolated timing, any other
  module a curve in its input channels; what runs between modules is charged to the one it precedes), then
  fits ``latency = const + scale * sum(module predictions)`` (least squares on relative error, ``scale >= 0``;
  the constant may be negative: the hooks' own overhead), the model :class:`~.targets.LatencyCost` evaluates. A second round adds the latency knapsack's own picks under the
  first fit (an optimiser seeks out where a cost model is wrong, so the fit must be right where targets
  land). All whole-model timings are round-robin with the dense model, so a change of machine load scales
  every one alike and the fitted *ratios* stay right;
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
from .ingraph import channel_probe, curve_at, fit_affine, fit_curve, leaf_modules, module_channels, time_modules

#: FLOPs fractions of the calibration exports: (ranking, ratio); None: the smallest model the constraints allow
#: (every group at its smallest size), so that the module curves cover the whole range and the table's floor,
#: which a too-low target is refused against, is measured rather than extrapolated
CALIBRATION = (('per_group', None), ('per_group', 0.2), ('per_group', 0.45), ('per_group', 0.7), ('global', 0.3),
               ('global', 0.6))
#: latency fractions of the second calibration round: the knapsack's own picks under the first fit
REFINE = (0.4, 0.5, 0.6, 0.75)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_steady = None


def steady_allocator() -> bool:
    """Fix glibc malloc's mmap and trim thresholds for the rest of this process (``mallopt``), so that a model's
    timing does not depend on what ran before it; True when set (glibc), False elsewhere.

    Why: glibc raises its mmap threshold each time a large block is freed, so whether a forward's activations
    (megabytes at batch 8) come from fresh, page-faulting mmaps or from the reused heap depends on the
    allocation history. Measured on the demo (CPU, 1 thread, batch 8): the same knapsack pick for a 0.6 latency
    target timed at 0.465 and 0.508 of dense in two round-robin runs, and at 0.592 and 0.598 with the thresholds
    fixed (``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296`` in the environment does the
    same), where the latency table predicts 0.60. The price: freed memory is kept by the process, not returned.
    """
    global _steady
    if _steady is None:
        import ctypes
        import ctypes.util
        try:
            libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
            _steady = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to fix
            _steady = False
    return _steady


def time_round_robin(fns: Sequence[Callable[[], object]], repeats: int = 10, warmup: int = 1,
                     sync: bool = False) -> List[float]:
    """Median wall time (ms) of each ``fn()``, timed in turns (one call of each per round) so that changes in
    machine load hit all of them alike: their *ratios* stay meaningful on a busy machine. Fixes the allocator's
    thresholds first (:func:`steady_allocator`), so that no timing depends on the allocation history."""
    steady_allocator()
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


def model_call(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None):
    """A no-argument call of ``forward_fn(model, x)`` (default: the traced part) on a random input, in eval mode."""
    from .channel_groups import default_forward
    forward_fn = forward_fn or default_forward(model)
    model.eval()
    x = torch.randn(*input_shape, device=next(model.parameters()).device)
    return lambda: forward_fn(model, x)


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


def layer_ms(entry: dict, layer: LayerShape, keep: Dict[str, int]) -> float:
    """A prunable layer's in-graph ms under ``keep``: its isolated grid timing, corrected by its in-graph fit
    (``[a, b]``; an uncalibrated table has none: the isolated timing as it is)."""
    from .targets import layer_channels
    cin, cout, _ = layer_channels(layer, keep)
    a, b = entry.get('ingraph', (1.0, 0.0))
    return a * interpolate(entry, cin, cout) + b


def module_ms(entry: dict, keep: Dict[str, int], sizes: Dict[str, int]) -> float:
    """Any other module's in-graph ms under ``keep``: its curve in its input channels (:mod:`.ingraph`)."""
    return curve_at(entry['curve'], module_channels((entry['channels'], entry['follows']), keep, sizes))


def predict_modules(table: dict, groups: ChannelGroups, keep: Dict[str, int]) -> float:
    """The modules' summed in-graph prediction of a configuration: what the whole-model fit scales."""
    sizes = {g.name: g.size for g in groups}
    return (sum(layer_ms(e, groups.layers[n], keep) for n, e in table['layers'].items())
            + sum(module_ms(e, keep, sizes) for e in table.get('modules', {}).values()))


def table_terms(table: dict, groups: ChannelGroups):
    """(constant, [(term fn, groups it depends on)]) of the table's prediction, for :class:`~.targets.LatencyCost`."""
    fit = table['fit']
    scale, const, terms = fit['scale'], fit['const_ms'], []
    sizes = {g.name: g.size for g in groups}
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        terms.append((lambda keep, e=entry, l=layer: scale * layer_ms(e, l, keep),
                      tuple(g for g in (layer.in_group, layer.out_group) if g)))
    for entry in table.get('modules', {}).values():
        if entry['follows']:
            terms.append((lambda keep, e=entry: scale * module_ms(e, keep, sizes), tuple(entry['follows'])))
        else:
            const += scale * module_ms(entry, {}, sizes)
    return const, terms


def fit_calibration(points: List[tuple]) -> dict:
    """Least squares of measured = const + scale * modules over the calibration points [(modules' summed
    prediction, measured ms)] on relative error, ``scale >= 0``, with the relative errors it leaves. ``const`` is
    what runs before the first and after the last module, less the hooks' own overhead (which the in-graph
    timings include and a deployed model does not run), so it may come out negative."""
    x, y = np.array([c for c, _ in points]), np.array([m for _, m in points])
    scale, const = fit_affine(x, y, negative_intercept=True)
    return dict(const_ms=const, scale=scale, rel_errors=[float(e) for e in (const + scale * x - y) / y])


# ------------------------------------------------------------------------------------------ measurement
def _grid(channels: int, points: int, round_to: int) -> list:
    """``points`` channel counts from the smallest a prune keeps (``round_to``) to the dense count, evenly spaced
    (multiples of ``round_to``): the grid spans every count a prune can reach, so nothing is extrapolated."""
    values = {channels, min(round_to, channels)}
    for k in range(1, points - 1):
        c = max(round_to, int(round(channels * k / (points - 1) / round_to)) * round_to)
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
    from .targets import FlopsCost, LatencyCost, allowed_sizes, group_step, solve
    scores = build_importance('l2')(groups)
    if table is None:
        flops = FlopsCost(groups)
        floor = flops({g.name: allowed_sizes(g.size, group_step(g, round_to))[0] for g in groups})
        return [solve(groups, scores, flops, floor if r is None else r * flops.dense, round_to, ranking)
                for ranking, r in CALIBRATION]
    latency, out = LatencyCost(groups, table), []
    for r in REFINE:
        try:
            out.append(solve(groups, scores, latency, r * latency.dense, round_to, 'knapsack'))
        except ValueError:  # below the smallest model: nothing to calibrate there
            pass
    return out


def _time_exports(groups, configs, shape, repeats, bar, names=None) -> tuple:
    """Kept counts, round-robin medians of the dense model (first) and each configuration's export, and (with
    ``names``) each one's in-graph module timings (a second, hooked round-robin pass)."""
    from .export import export_pruned
    keeps, models = [{}], [groups.model]
    for masks in configs:
        keeps.append({k: int(m.sum()) for k, m in masks.items()})
        # only the shapes are timed (the unmasked model's values are exported as they are): no self-check
        models.append(export_pruned(groups, masks, check=False))
        bar and bar.update()
    sync = next(groups.model.parameters()).device.type == 'cuda'
    calls = [model_call(m, shape, groups.forward_fn) for m in models]
    totals = time_round_robin(calls, repeats, warmup=1, sync=sync)
    modules = time_modules(calls, models, names, repeats, sync) if names else None
    return keeps, totals, modules


def _fit_modules(table: dict, groups: ChannelGroups, keeps, samples, probe) -> None:
    """Per-module in-graph fits over the timed configurations (:mod:`.ingraph`), written into ``table``."""
    from .targets import layer_channels
    sizes = {g.name: g.size for g in groups}
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        iso = [interpolate(entry, *layer_channels(layer, k)[:2]) for k in keeps]
        entry['ingraph'] = fit_affine(iso, [s.get(name, 0.0) for s in samples])
    table['modules'] = {}
    for name, (channels, follows) in probe.items():
        if name in table['layers'] or not all(name in s for s in samples):
            continue
        ch = [module_channels((channels, follows), k, sizes) for k in keeps]
        table['modules'][name] = dict(channels=channels, follows=follows,
                                      curve=fit_curve(ch, [s[name] for s in samples]))


def _fit(table, groups, keeps, totals, samples, probe) -> list:
    """The per-module fits, then the whole-model fit on top; returns the calibration points."""
    _fit_modules(table, groups, keeps, samples, probe)
    points = [(predict_modules(table, groups, k), ms) for k, ms in zip(keeps, totals)]
    table['fit'] = fit_calibration(points)
    return points


def _calibrate(table, groups, round_to, shape, repeats, bar) -> list:
    """Pass 1 on the FLOPs calibration prunes, pass 2 adding the knapsack's picks under the pass-1 fit; every
    model timed whole and module by module. Returns the calibration points."""
    probe = channel_probe(groups, list(leaf_modules(groups.model)))
    bar and bar.update()
    names = list(probe)
    keeps, totals, samples = _time_exports(groups, _calibration_configs(groups, round_to), shape, repeats, bar,
                                           names)
    _fit(table, groups, keeps, totals, samples, probe)
    more_keeps, more, more_samples = _time_exports(groups, _calibration_configs(groups, round_to, table), shape,
                                                   repeats, bar, names)
    scale = totals[0] / more[0]  # put the second round on the first round's scale (load drifts)
    keeps += more_keeps[1:]
    totals += [ms * scale for ms in more[1:]]
    samples += [{n: ms * scale for n, ms in s.items()} for s in more_samples[1:]]
    return _fit(table, groups, keeps, totals, samples, probe)


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
        steps = len(layers) + (1 + len(CALIBRATION) + len(REFINE) if calibrate else 0)
        bar = ProgressBar(steps) if show_progress else None
        table = {'fingerprint': fingerprint(groups, batch, device_name(device), threads), 'layers': {}}
        for name, layer in layers.items():
            table['layers'][name] = _measure_layer(layer, groups.model.get_submodule(name), batch, device,
                                                   points, round_to, repeats)
            bar and bar.update()
        shape = (batch,) + tuple(groups.input_shape[1:])
        if calibrate:
            points_ = _calibrate(table, groups, round_to, shape, model_repeats, bar)
        else:  # isolated timings as they are, the rest constant
            _, (dense_ms,), _ = _time_exports(groups, [], shape, model_repeats, bar)
            conv = predict_modules(table, groups, {})
            table['fit'] = dict(const_ms=max(dense_ms - conv, 0.0), scale=1.0, rel_errors=[])
            points_ = [(conv, dense_ms)]
        table['calibration'] = [dict(modules_ms=c, measured_ms=m) for c, m in points_]
        table['dense_ms'] = points_[0][1]
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
