"""A latency lookup table: what it holds, whom it fits (its fingerprint and checks), how it predicts a
configuration's latency, and how it is stored (plain JSON).

A table holds every prunable conv/linear layer timed alone on a grid of (in, out) channels (bilinear
interpolation in between), each layer's in-graph correction and every other module's in-graph curve in its
input channels (:mod:`.ingraph`), and the whole-model fit ``latency = const + scale * sum(module
predictions)`` that :class:`~.targets.LatencyCost` evaluates; :mod:`.latency_measure` explains why and measures
one. A fingerprint (model signature, input size, batch, device, threads, runtime, precision) refuses a table from
another model or input, naming both, and checks batch / device / threads / runtime (``pytorch`` or
``onnxruntime``: a table timed in one runtime mispredicts the other) / precision against what the target asks for.
"""
import hashlib
import json
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.io import atomic_write_json
from .channel_groups import ChannelGroups, LayerShape, layer_channels


# ------------------------------------------------------------------------------------------ fingerprint
def model_signature(groups: ChannelGroups) -> str:
    """A short hash of every traced layer's name and dense shape and of the prunable groups."""
    parts = [f'{n}:{l.kind}:{l.in_channels}:{l.out_channels}:{l.groups}:{l.kernel_elems}:{l.positions}'
             for n, l in sorted(groups.layers.items())]
    parts += [f'group:{g.name}:{g.size}' for g in groups]
    return hashlib.sha1('\n'.join(parts).encode()).hexdigest()[:12]


#: what a table without ``runtime`` / ``precision`` in its fingerprint was measured with (tables before ORT ones)
FINGERPRINT_DEFAULTS = dict(runtime='pytorch', precision='fp32')


def fingerprint(groups: ChannelGroups, batch: int, device: str, threads: int, runtime: str = 'pytorch',
                precision: str = 'fp32') -> dict:
    return dict(model=type(groups.model).__name__, signature=model_signature(groups),
                input_size=list(groups.input_shape[1:]), batch=int(batch), device=str(device), threads=int(threads),
                runtime=str(runtime), precision=str(precision))


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'cuda:{torch.cuda.get_device_name(device)}'
    return 'cpu'


def check_table(table: dict, groups: ChannelGroups, expect: Optional[dict] = None) -> None:
    """Refuse a table from another model or input (always), or batch / device / threads / runtime / precision
    other than ``expect`` asks for (keys of the latency target); name both sides and the fix. A table without
    ``runtime`` / ``precision`` is a PyTorch fp32 one (:data:`FINGERPRINT_DEFAULTS`)."""
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
        have = fp.get(key, FINGERPRINT_DEFAULTS.get(key))
        if key == 'device' and isinstance(have, str) and isinstance(value, str):
            ok = have == value or have.split(':')[0] == value  # 'cuda' accepts any CUDA device name
        else:
            ok = have == value
        if not ok:
            flag = f' --{key} {value}' if key in FINGERPRINT_DEFAULTS else ''
            raise ValueError(f'latency table was measured with {key}={have!r}, the latency target asks for '
                             f'{key}={value!r}: build a table with that {key} (tools/build_latency_table.py'
                             f'{flag})')
    missing = [n for n, l in groups.layers.items() if l.groups_touching and n not in table['layers']]
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


def module_channels(probe: Tuple[int, Dict[str, float]], keep: Dict[str, int], sizes: Dict[str, int]) -> float:
    """A module's input channels under ``keep``, from its :func:`channel_probe` entry."""
    dense, follows = probe
    return dense - sum(w * (sizes[g] - keep.get(g, sizes[g])) for g, w in follows.items())


def curve_at(curve: Sequence[Sequence[float]], x: float) -> float:
    """Piecewise-linear interpolation of a :func:`.latency_measure.fit_curve` result, clamped at its ends."""
    return float(np.interp(x, curve[0], curve[1]))


def table_terms(table: dict, groups: ChannelGroups):
    """(constant, [(term fn, groups it depends on)]) of the table's prediction, for :class:`~.targets.LatencyCost`."""
    fit = table['fit']
    scale, const, terms = fit['scale'], fit['const_ms'], []
    sizes = {g.name: g.size for g in groups}
    for name, entry in table['layers'].items():
        layer = groups.layers[name]
        terms.append((lambda keep, e=entry, l=layer: scale * layer_ms(e, l, keep),
                      layer.groups_touching))
    for entry in table.get('modules', {}).values():
        if entry['follows']:
            terms.append((lambda keep, e=entry: scale * module_ms(e, keep, sizes), tuple(entry['follows'])))
        else:
            const += scale * module_ms(entry, {}, sizes)
    return const, terms


def save_table(table: dict, path: str) -> None:
    atomic_write_json(path, table)  # never leave a half-written table behind


def load_table(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'latency table {path!r} does not exist: build it with '
                                f'tools/build_latency_table.py CONFIG --out {path}')
    with open(path) as f:
        return json.load(f)
