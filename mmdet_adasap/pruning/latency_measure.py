"""Measuring a latency lookup table on the machine that will run the model (HALP's approach): isolated layer
grids, then a calibration against whole exported models.

FLOPs are not latency (halving a ResNet-50's bottleneck widths gives no speed-up at batch 1 on a GPU, where the
kernels are launch-bound), so a latency target needs measurements. A table holds:

* every prunable conv/linear layer timed alone on a ``points`` x ``points`` grid of (in, out) channels at its
  traced input size and the table's batch (bilinear interpolation in between: a conv's time is close to
  bilinear in (in, out), its MACs exactly so);
* a *calibration* against whole exported models: the isolated timings alone mispredict the whole model (on
  the demo CPU, isolated timings plus a fitted constant put 5.6 of 14.0 ms in the constant and predicted 0.83
  of dense for a model that ran at 0.72). A layer runs at another speed inside the graph than alone, and much
  of the time is in what runs between the layers (norms, activations, the stem's pool), which scales with the
  channels that flow through it. So the table times the dense model and a few pruned exports (uniform and global-ranking
  prunes at several FLOPs levels) whole *and* module by module inside the graph, fits every module's in-graph
  time on those configurations (:mod:`.ingraph` times them: a prunable layer affine in its isolated timing, any other
  module a curve in its input channels; what runs between modules is charged to the one it precedes), then
  fits ``latency = const + scale * sum(module predictions)`` (least squares on relative error, ``scale >= 0``;
  the constant may be negative: the hooks' own overhead), the model :class:`~.targets.LatencyCost` evaluates. A second round adds the latency knapsack's own picks under the
  first fit (an optimiser seeks out where a cost model is wrong, so the fit must be right where targets
  land). All whole-model timings are round-robin with the dense model, so a change of machine load scales
  every one alike and the fitted *ratios* stay right;
* a fingerprint (model signature, input size, batch, device, threads, runtime, precision): a table from another
  model or input is refused naming both, and batch / device / threads / runtime / precision are checked against
  what the target asks for.

*What* times the layers and models is a timing backend passed in (``timing=``): :class:`TorchTiming` (PyTorch
eager, the default) or :class:`mmdet_adasap.deploy.ort_timing.OrtTiming` (each layer and model exported to ONNX
and run by an ONNX Runtime session, for a detector that ships as ONNX: a PyTorch table mispredicts ORT, whose
fused kernels spend their time elsewhere). The grid, the calibration configurations, the round-robin discipline
and the fits are the same for both; a backend that cannot time modules inside its graph (``in_graph = False``:
ORT fuses conv, norm and activation into one kernel, so a PyTorch module has no ORT time of its own) calibrates on
the whole-model timings alone (see :func:`_calibrate`). The backend lives with its runtime (ORT's in
:mod:`mmdet_adasap.deploy`, which imports this package, never the other way round).

The table is plain JSON, built once per machine with ``tools/build_latency_table.py``.
"""
import statistics
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.utils import ProgressBar

from ..utils.timing import time_round_robin
from .channel_groups import ChannelGroups, LayerShape, layer_channels, model_call
from .export import export_pruned
from .importance import build_importance
from .ingraph import channel_probe, leaf_modules, time_modules
from .latency_table import device_name, fingerprint, interpolate, module_channels, predict_modules
from .targets import FlopsCost, LatencyCost, allowed_sizes, group_step, solve

#: FLOPs fractions of the calibration exports: (ranking, ratio); None: the smallest model the constraints allow
#: (every group at its smallest size), so that the module curves cover the whole range and the table's floor,
#: which a too-low target is refused against, is measured rather than extrapolated
CALIBRATION = (('per_group', None), ('per_group', 0.2), ('per_group', 0.45), ('per_group', 0.7), ('global', 0.3),
               ('global', 0.6))
#: latency fractions of the second calibration round: the knapsack's own picks under the first fit
REFINE = (0.4, 0.5, 0.6, 0.75)


def fit_affine(x: Sequence[float], y: Sequence[float], negative_intercept: bool = False) -> List[float]:
    """``[slope, intercept]`` of ``y ~ slope * x + intercept``, least squares on relative error (small
    configurations count as much as the dense one), ``slope >= 0`` and ``intercept >= 0`` unless
    ``negative_intercept``; ``[0, median y]`` when ``x`` does not vary."""
    from scipy.optimize import lsq_linear  # heavy (~0.3 s to import): only a table build needs it
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) <= 1e-12 * max(1.0, abs(x).max()):
        return [0.0, float(np.median(y))]
    w = 1.0 / np.maximum(y, 1e-9)
    low = [0.0, -np.inf if negative_intercept else 0.0]
    coef = lsq_linear(np.stack([x, np.ones_like(x)], 1) * w[:, None], y * w, bounds=(low, [np.inf, np.inf])).x
    return [float(coef[0]), float(coef[1])]


def fit_curve(x: Sequence[float], y: Sequence[float]) -> List[List[float]]:
    """``[xs, ys]``: the median ``y`` at each distinct ``x``, for piecewise-linear interpolation (a norm's or a
    pool's time is not linear in its channels: it falls steeply once the activations fit in the cache)."""
    by_x: Dict[float, List[float]] = {}
    for a, b in zip(x, y):
        by_x.setdefault(round(float(a), 6), []).append(float(b))
    xs = sorted(by_x)
    return [xs, [statistics.median(by_x[a]) for a in xs]]


def fit_calibration(points: List[tuple]) -> dict:
    """Least squares of measured = const + scale * modules over the calibration points [(modules' summed
    prediction, measured ms)] on relative error, ``scale >= 0``, with the relative errors it leaves. ``const`` is
    what runs before the first and after the last module, less the hooks' own overhead (which the in-graph
    timings include and a deployed model does not run), so it may come out negative."""
    x, y = np.array([c for c, _ in points]), np.array([m for _, m in points])
    scale, const = fit_affine(x, y, negative_intercept=True)
    return dict(const_ms=const, scale=scale, rel_errors=[float(e) for e in (const + scale * x - y) / y])


# ------------------------------------------------------------------------------------------ timing backends
class TorchTiming:
    """The default timing backend: PyTorch eager on the model's device, ``torch.set_num_threads`` threads (set by
    :func:`measure_latency_table`). A backend times lists of calls round-robin (:func:`time_round_robin`) and says
    what it is (``runtime``, ``precision``: recorded in the table's fingerprint) and whether it can time modules
    inside the graph (``in_graph``: forward hooks can)."""
    runtime, precision, in_graph = 'pytorch', 'fp32', True
    threads: Optional[int] = None

    def time_layers(self, pairs: Sequence[tuple], repeats: int, device: torch.device) -> List[float]:
        """Median ms of each ``module(x)`` of ``pairs`` [(module, x)], round-robin."""
        calls = [lambda m=m, x=x: m(x) for m, x in pairs]
        return time_round_robin(calls, repeats, warmup=1, sync=device.type == 'cuda')

    def time_models(self, models: Sequence[nn.Module], shape, forward_fn, repeats: int,
                    names: Optional[Sequence[str]] = None) -> tuple:
        """(median ms of each model's ``forward_fn`` at ``shape``, round-robin; with ``names``, each model's
        in-graph module timings, a second, hooked round-robin pass)."""
        sync = next(models[0].parameters()).device.type == 'cuda'
        calls = [model_call(m, shape, forward_fn) for m in models]
        totals = time_round_robin(calls, repeats, warmup=1, sync=sync)
        return totals, (time_modules(calls, models, names, repeats, sync) if names else None)


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


def _measure_layer(layer, dense, batch, device, points, round_to, repeats, timing=None) -> dict:
    """The layer at every grid point, timed round-robin by ``timing`` (the grid's shape survives load changes)."""
    cins = _grid(layer.in_channels, points, round_to) if layer.in_parts and not layer.depthwise else \
        [layer.in_channels]
    couts = _grid(layer.out_channels, points, round_to) if layer.out_parts else [layer.out_channels]
    pairs = []
    for cin in cins:
        for cout in couts:
            m = _layer_module(layer, cin, cout, dense).to(device).eval()
            shape = [batch] + list(layer.in_shape[1:])
            shape[1 if layer.kind == 'conv' else -1] = cout if layer.depthwise else cin
            pairs.append((m, torch.randn(*shape, device=device)))
    flat = (timing or TorchTiming()).time_layers(pairs, repeats, device)
    return {'cin': cins, 'cout': couts, 'ms': [flat[i * len(couts):(i + 1) * len(couts)] for i in range(len(cins))]}


def _calibration_configs(groups: ChannelGroups, round_to: int, table: Optional[dict] = None
                         ) -> List[Dict[str, torch.Tensor]]:
    """Pass 1 (``table=None``): uniform and global FLOPs prunes (``CALIBRATION``). Pass 2: the latency
    knapsack's own picks with the pass-1 table (``REFINE``), so that the fit is right where targets land."""
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


def _time_exports(groups, configs, shape, repeats, bar, names=None, timing=None) -> tuple:
    """Kept counts, round-robin medians of the dense model (first) and each configuration's export, and (with
    ``names``) each one's in-graph module timings (a second, hooked round-robin pass), all timed by ``timing``."""
    keeps, models = [{}], [groups.model]
    for masks in configs:
        keeps.append({k: int(m.sum()) for k, m in masks.items()})
        # only the shapes are timed (the unmasked model's values are exported as they are): no self-check
        models.append(export_pruned(groups, masks, check=False))
        bar and bar.update()
    totals, modules = (timing or TorchTiming()).time_models(models, shape, groups.forward_fn, repeats, names)
    return keeps, totals, modules


def _fit_modules(table: dict, groups: ChannelGroups, keeps, samples, probe) -> None:
    """Per-module in-graph fits over the timed configurations (:mod:`.ingraph`), written into ``table``; none
    without in-graph ``samples`` (the isolated timings as they are, no other modules)."""
    table['modules'] = {}
    if samples is None:
        return
    sizes = {g.name: g.size for g in groups}
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        iso = [interpolate(entry, *layer_channels(layer, k)[:2]) for k in keeps]
        entry['ingraph'] = fit_affine(iso, [s.get(name, 0.0) for s in samples])
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


def _calibrate(table, groups, round_to, shape, repeats, bar, timing) -> list:
    """Pass 1 on the FLOPs calibration prunes, pass 2 adding the knapsack's picks under the pass-1 fit; every
    model timed whole and (where ``timing.in_graph``) module by module. Returns the calibration points.

    Without in-graph timings the whole-model fit (``const + scale * sum of isolated layer timings``) is the whole
    calibration: with ORT, where norms and activations are fused into the convs, that is what predicts (see
    :mod:`mmdet_adasap.deploy.ort_timing`)."""
    probe = channel_probe(groups, list(leaf_modules(groups.model))) if timing.in_graph else {}
    bar and bar.update()
    names = list(probe) or None
    keeps, totals, samples = _time_exports(groups, _calibration_configs(groups, round_to), shape, repeats, bar,
                                           names, timing)
    _fit(table, groups, keeps, totals, samples, probe)
    more_keeps, more, more_samples = _time_exports(groups, _calibration_configs(groups, round_to, table), shape,
                                                   repeats, bar, names, timing)
    scale = totals[0] / more[0]  # put the second round on the first round's scale (load drifts)
    keeps += more_keeps[1:]
    totals += [ms * scale for ms in more[1:]]
    if samples is not None:
        samples += [{n: ms * scale for n, ms in s.items()} for s in more_samples[1:]]
    return _fit(table, groups, keeps, totals, samples, probe)


def measure_latency_table(groups: ChannelGroups, batch: Optional[int] = None, threads: Optional[int] = None,
                          points: int = 5, round_to: int = 8, repeats: int = 5, model_repeats: int = 20,
                          calibrate: bool = True, show_progress: bool = True, timing=None) -> dict:
    """Measure a table for ``groups`` on the device the model's parameters live on, with ``threads`` intra-op
    threads (default: the current setting) at ``batch`` (default: the trace batch), every timing done by
    ``timing`` (default :class:`TorchTiming`; its ``threads`` are set to ``threads``); see the module docstring."""
    timing = timing or TorchTiming()
    device = next(groups.model.parameters()).device
    batch = int(batch or groups.input_shape[0])
    before = torch.get_num_threads()
    threads = int(threads or before)
    torch.set_num_threads(threads)
    timing.threads = threads
    t0 = time.perf_counter()
    try:
        layers = {n: l for n, l in groups.layers.items() if l.groups_touching}
        steps = len(layers) + (1 + len(CALIBRATION) + len(REFINE) if calibrate else 0)
        bar = ProgressBar(steps) if show_progress else None
        table = {'fingerprint': fingerprint(groups, batch, device_name(device), threads, timing.runtime,
                                            timing.precision), 'layers': {}}
        for name, layer in layers.items():
            table['layers'][name] = _measure_layer(layer, groups.model.get_submodule(name), batch, device,
                                                   points, round_to, repeats, timing)
            bar and bar.update()
        shape = (batch,) + tuple(groups.input_shape[1:])
        if calibrate:
            points_ = _calibrate(table, groups, round_to, shape, model_repeats, bar, timing)
        else:  # isolated timings as they are, the rest constant
            _, (dense_ms,), _ = _time_exports(groups, [], shape, model_repeats, bar, timing=timing)
            conv = predict_modules(table, groups, {})
            table['fit'] = dict(const_ms=max(dense_ms - conv, 0.0), scale=1.0, rel_errors=[])
            points_ = [(conv, dense_ms)]
        table['calibration'] = [dict(modules_ms=c, measured_ms=m) for c, m in points_]
        table['dense_ms'] = points_[0][1]
    finally:
        torch.set_num_threads(before)
    table['build_s'] = time.perf_counter() - t0
    return table
