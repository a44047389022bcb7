"""The ONNX Runtime timing backend of a latency lookup table (``tools/build_latency_table.py --runtime
onnxruntime``): every layer configuration of the grid and every calibration model is exported to ONNX and timed by
an ORT CPU session, so that the latency knapsack plans for the runtime the detector ships in.

Why a table of its own: the detector ships as ONNX, and ORT spends its time elsewhere than PyTorch eager (it folds
batch norm into the convs, fuses the activations and residual adds into them and runs convs in a blocked NCHWc
layout); on the demo detector a knapsack prune to 0.6 of the latency with a PyTorch table landed at 0.70-0.79 of
the dense network's ORT time.

What is timed, and why (the choice the issue left open: per-layer graphs exported at each width vs whole pruned
exports only):

* the grid: each prunable layer exported *alone* at each (in, out) width of the grid, as a one-node ONNX graph.
  A conv's time is close to bilinear in (in, out), and a prune changes both sides of a layer at once: per-layer
  graphs measure that interaction directly, where whole exports pruning one group at a time (the alternative, and
  ``points x groups`` whole exports: ~150 for the demo, each timing the whole network to see one layer move) see
  each group's effect only with every other group dense, and the differences of whole-network timings drown a
  small layer in the noise of the rest;
* the calibration: whole pruned exports of the network up to the pre-NMS tensors (the graph
  :func:`mmdet_adasap.deploy.latency.export_network` writes), round-robin with the dense one, fitted as
  ``const + scale * sum of the layers' ORT timings`` (:func:`mmdet_adasap.pruning.latency_measure.fit_calibration`).
  ORT has no per-module timings to fit in-graph curves on (``in_graph = False``): its profiler reports fused
  kernels named after their output tensors, not modules. It needs none of them as much as PyTorch does: with the
  norms, activations and adds fused into the conv kernels, the convs *are* nearly all of the graph's time (the
  demo's max-pool and NCHWc reorders are a few per cent), so the layers' isolated ORT timings, scaled by the fit,
  predict the whole network; the table's ``fit.rel_errors`` report how well on the calibration models.

Clock: with one thread (the default) ORT runs every kernel on the calling thread, so each call is timed by that
thread's CPU time (``time.thread_time``): on a loaded machine the wall clock adds the time other processes hold
the core, CPU time does not. With more threads, wall time (the pool's threads are not the caller's).
Every timing goes through :func:`mmdet_adasap.utils.timing.time_round_robin`, round-robin with its peers.
"""
import io
import time
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..pruning.channel_groups import TracedPart
from ..utils.timing import time_round_robin
from .onnx_detector import make_session

RUNTIME = 'onnxruntime'
PRECISIONS = ('fp32', )
#: precisions a later version may time (ORT static QDQ via :mod:`.quantize`), refused for now naming the fix
NOT_BUILT = ('int8', )


def check_precision(precision: str) -> str:
    if precision in NOT_BUILT:
        raise ValueError(f'precision {precision!r} is not built yet for ONNX Runtime latency tables (each timed '
                         'graph would have to be quantized, mmdet_adasap/deploy/quantize.py): build an fp32 table '
                         '(--precision fp32)')
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; choose one of {PRECISIONS}')
    return precision


def onnx_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    """``module`` traced at ``x`` (fixed shape: a table times one input size), as a serialised ONNX model with one
    input, ``input``."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings of the detector's shape arithmetic: shapes are fixed here
        torch.onnx.export(module.eval(), (x, ), buf, dynamo=False, opset_version=17, input_names=['input'])
    return buf.getvalue()


class OrtTiming:
    """Times modules by exporting each to ONNX and running it in an ONNX Runtime CPU session with ``threads``
    intra-op threads (set by :func:`~mmdet_adasap.pruning.latency_measure.measure_latency_table`); the backend
    protocol of :class:`~mmdet_adasap.pruning.latency_measure.TorchTiming`."""
    runtime, in_graph = RUNTIME, False

    def __init__(self, threads: int = 1, precision: str = 'fp32', warmup: int = 2):
        self.threads = int(threads)
        self.precision = check_precision(precision)
        self.warmup = int(warmup)

    @property
    def clock(self):
        return time.thread_time if self.threads == 1 else time.perf_counter

    def time_graphs(self, graphs: Sequence[bytes], inputs: Sequence[torch.Tensor], repeats: int) -> List[float]:
        """Median ms of each serialised ONNX graph run on its input, round-robin (one session per graph)."""
        sessions = [make_session(g, self.threads) for g in graphs]
        feeds = [{'input': x.detach().cpu().float().numpy()} for x in inputs]
        calls = [lambda s=s, f=f: s.run(None, f) for s, f in zip(sessions, feeds)]
        return time_round_robin(calls, repeats, warmup=self.warmup, clock=self.clock)

    def time_layers(self, pairs: Sequence[tuple], repeats: int, device: Optional[torch.device] = None
                    ) -> List[float]:
        """Median ms of each ``module(x)`` of ``pairs`` [(module, x)], each exported alone."""
        pairs = [(m.cpu(), x.cpu()) for m, x in pairs]
        return self.time_graphs([onnx_bytes(m, x) for m, x in pairs], [x for _, x in pairs], repeats)

    def time_models(self, models: Sequence[nn.Module], shape, forward_fn, repeats: int,
                    names: Optional[Sequence[str]] = None) -> tuple:
        """(median ms of each model's traced part at ``shape``, exported with flat outputs like
        :func:`~mmdet_adasap.deploy.latency.export_network`; None: ORT has no per-module timings)."""
        if next(models[0].parameters()).device.type != 'cpu':
            raise ValueError('ONNX Runtime latency tables are timed on the CPU: build the table with the model on '
                             'the CPU (--device cpu)')
        x = torch.rand(*shape)
        graphs = [onnx_bytes(TracedPart(m, forward_fn, flat_outputs=True), x) for m in models]
        return self.time_graphs(graphs, [x] * len(graphs), repeats), None
