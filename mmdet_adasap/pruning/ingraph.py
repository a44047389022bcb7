"""In-graph timing of every module of a detector: what a latency table learns its per-module corrections from.

Why: a conv timed alone runs at another speed than inside the network, and much of a detector's time is not in
its convs at all. Measured on the demo detector (CPU, 1 thread, ``torch.profiler``, batch 8): the stem's
max-pool takes 18-24 % of the forward and halves with the stem's channels, batch norm another 3-10 % (it
falls 6x when the stem and layer1 are halved: the activations then fit in the cache); at batch 1 a small layer
costs a fixed 0.02-0.05 ms inside the graph, 2-3x its isolated timing. A calibration that puts all of
that into one constant, a scale on the isolated layers and an activation-volume term lands batch-1 demo
targets 11 and 23 % off (1.114, 1.229 of the target) even with the allocator fixed
(:func:`mmdet_adasap.utils.timing.steady_allocator`): the knapsack seeks out where a cost model is wrong.

So a table (:mod:`.latency_measure`) times every *leaf* module inside the graph (forward hooks, a module's calls summed per forward) on
the dense model and the calibration exports, and fits, per module, on those configurations:

* a prunable conv/linear layer: ``in-graph ms = a * isolated(cin, cout) + b``, its isolated timing from the
  table's grid (:func:`.latency_table.interpolate`): the grid gives the shape in (cin, cout), the in-graph runs the
  level;
* any other module (norm, activation, pooling, upsampling, ...): its in-graph time as a piecewise-linear curve
  in its input channels (:func:`.latency_measure.fit_curve`), which follow the groups that :func:`channel_probe` found feed
  it (the stem's pool follows the stem group; a module after a concat follows several).

What runs between modules (residual adds, concats, freeing and allocating activations: 4-25 ms of the demo's
136 ms at batch 8, more the larger the activations) is charged to the module that follows it
(:class:`ModuleTimer`), so the charges add up to the whole forward. On CUDA each hook synchronises, so a
module's kernels are attributed to it.
"""
import contextlib
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils.timing import time_round_robin
from .channel_groups import ChannelGroups, model_call
from .export import export_pruned


def leaf_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """Modules without children (the ones whose forward does the work), by name; the root excluded."""
    return {n: m for n, m in model.named_modules() if n and next(m.children(), None) is None}


def _channels(inp) -> Optional[int]:
    """Channel count of a module's first tensor input: dim 1 of an image-like tensor, the last dim otherwise."""
    x = inp[0] if isinstance(inp, tuple) and inp else inp
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        return None
    return int(x.shape[1] if x.dim() == 4 else x.shape[-1])


class ModuleTimer:
    """Forward hooks on the leaf modules of ``model``. Each module is charged the time from the end of the module
    before it (or from its own start, for the first one) to its own end, so that what runs between modules
    (residual adds, freeing and allocating activations) goes to the module it precedes, and the charges of one
    forward add up to the whole forward but its head and tail. After a forward (:meth:`reset` before it),
    ``last`` holds each module's charge in ms and ``channels`` its input channels, both summed over its calls
    (a ResNet block's one ReLU runs on two groups' channels)."""

    def __init__(self, model: nn.Module, names: Optional[Sequence[str]] = None, sync: bool = False):
        leaves = leaf_modules(model)
        self.modules = {n: leaves[n] for n in (names if names is not None else leaves) if n in leaves}
        self.sync = torch.cuda.synchronize if sync else (lambda: None)
        self.last: Dict[str, float] = {}
        self.channels: Dict[str, int] = {}
        self._end: Optional[float] = None
        self._handles = []

    def reset(self) -> None:
        self.last, self.channels, self._end = {}, {}, None

    def __enter__(self):
        for name, mod in self.modules.items():
            self._handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(mod.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, name):
        def hook(mod, inp):
            if self._end is None:
                self.sync()
                self._end = time.perf_counter()
            c = _channels(inp)
            if c is not None:
                self.channels[name] = self.channels.get(name, 0) + c
        return hook

    def _post(self, name):
        def hook(mod, inp, out):
            self.sync()
            now = time.perf_counter()
            self.last[name] = self.last.get(name, 0.0) + (now - self._end) * 1e3
            self._end = now
        return hook


def time_modules(calls: Sequence[Callable[[], object]], models: Sequence[nn.Module], names: Sequence[str],
                 repeats: int, sync: bool = False) -> List[Dict[str, float]]:
    """Median in-graph ms of each module in ``names`` for each model, the models run round-robin (one forward of
    each per round) so that load changes hit them alike. ``calls[i]()`` runs ``models[i]``."""
    samples = [{n: [] for n in names} for _ in models]
    timers = [ModuleTimer(m, names, sync) for m in models]
    wrapped = []
    for i, (call, timer) in enumerate(zip(calls, timers)):
        def run(call=call, timer=timer, s=samples[i]):
            timer.reset()
            call()
            for n, ms in timer.last.items():
                s[n].append(ms)
        wrapped.append(run)
    with contextlib.ExitStack() as hooked:
        for t in timers:
            hooked.enter_context(t)
        time_round_robin(wrapped, repeats, warmup=1, sync=sync)
    # the warm-up round appended too: drop it
    return [{n: statistics.median(v[1:] or v) for n, v in s.items() if v} for s in samples]


def channel_probe(groups: ChannelGroups, names: Sequence[str]) -> Dict[str, Tuple[int, Dict[str, float]]]:
    """For each module in ``names``: (dense input channels, {group: channels lost per channel the group loses}).

    Found by running, for each group alone, an export with that group at its smallest size (round_to 1) and
    recording which modules' input channel counts change, and by how much: a module after a concat of two
    groups' outputs follows both. Modules whose channels no group changes map to ``{}``."""
    dense = _probe_channels(groups.model, groups, names)
    out = {n: (c, {}) for n, c in dense.items()}
    for g in groups:
        smallest = max(1, int(getattr(g, 'block', 1)))
        masks = {h.name: torch.ones(h.size, dtype=torch.bool) for h in groups}
        masks[g.name][smallest:] = False
        lost = g.size - smallest
        if lost <= 0:
            continue
        probed = _probe_channels(export_pruned(groups, masks, check=False), groups, names)
        for n, c in probed.items():
            if n in out and c != dense[n]:
                out[n][1][g.name] = (dense[n] - c) / lost
    return out


def _probe_channels(model: nn.Module, groups: ChannelGroups, names: Sequence[str]) -> Dict[str, int]:
    with ModuleTimer(model, names) as timer, torch.inference_mode():
        model_call(model, groups.input_shape, groups.forward_fn)()
    return dict(timer.channels)


