"""The ONNX Runtime timing backend of a latency lookup table (``tools/build_latency_table.py --runtime
onnxruntime``): every layer configuration of the grid and every calibration model is exported to ONNX and timed by
an ORT CPU session, so that the latency knapsack plans for the runtime the detector ships in.

Why a table of its own: the detector ships as ONNX, and ORT spends its time elsewhere than PyTorch eager (it folds
batch norm into the convs, fuses the activations and residual adds into them and runs convs in a blocked NCHWc
layout); on the demo detector knapsack prunes with a PyTorch table ran at 0.60-0.79 of the dense network's ORT
time for a target of 0.6, and at 0.95-1.00 for 0.8 (``tools/benchmark_latency_prune.py --runtime onnxruntime
--compare-pytorch-table``).

What is timed, and why (the choice the issue left open: per-layer graphs exported at each width vs whole pruned
exports only):

* the grid: each prunable layer exported *alone* at each (in, out) width of the grid, as a one-node ONNX graph.
  A conv's time is close to bilinear in (in, out), and a prune changes both sides of a layer at once: per-layer
  graphs measure that interaction directly, where whole exports pruning one group at a time (the alternative, and
  ``points x groups`` whole exports: ~150 for the demo, each timing the whole network to see one layer move) see
  each group's effect only with every other group dense, and the differences of whole-network timings drown a
  small layer in the noise of the rest. A layer graph is timed by its own kernels (``layer_time='kernel'``, ORT's
  profiler; :func:`kernel_ms`): alone, ORT also reorders its input and output to and from the blocked layout,
  which the network does only at its ends. Charged to the layer, that
  cost falls with its channels and over-states what pruning saves: on the demo detector (256 px, batch 1, one
  thread, two round-robin trials), the knapsack's prunes to 0.6 / 0.8 ran at 1.053-1.063 / 1.022-1.036 of the
  target with whole-run layer timings (``layer_time='run'``), at 1.010-1.031 / 1.012-1.028 with kernel timings;
* the calibration: whole pruned exports of the network up to the pre-NMS tensors (the graph
  :func:`mmdet_adasap.deploy.latency.export_network` writes), round-robin with the dense one, fitted as
  ``const + scale * sum of the layers' ORT timings`` (:func:`mmdet_adasap.pruning.latency_measure.fit_calibration`).
  ORT has no per-module timings to fit in-graph curves on (``in_graph = False``): its profiler reports fused
  kernels named after their output tensors, not modules. It needs none of them as much as PyTorch does: with the
  norms, activations and adds fused into the conv kernels, the convs *are* nearly all of the graph's time (the
  demo's max-pool and NCHWc reorders are a few per cent), so the layers' isolated ORT timings, scaled by the fit,
  predict the whole network; the table's ``fit.rel_errors`` report how well on the calibration models. What this
  leaves: a layer's kernel runs a little differently inside the network than alone, and without per-module ORT
  timings there is no per-layer in-graph correction as a PyTorch table has; the knapsack finds those differences
  (its demo prunes to 0.6 land at 1.01-1.08 of the target, 0.8 at 1.01-1.03: above rather than below).
  Mapping the profiler's kernels of whole exports back to modules would give one: the fused kernels are named
  after their output tensors, and carry their shapes, channels padded to the NCHWc block (16 on AVX-512).

Precision (``precision``, recorded in the table's fingerprint): ``fp32`` times the exports as they are; ``int8``
times every graph (grid layers, calibration models, a benchmark's networks) after the static quantization that
:mod:`.quantize` applies to a detector (:func:`quantize_graph`: ``quantize_static``, QDQ, per-channel symmetric
int8 weights, uint8 activations (U8S8), MinMax calibrated on the timed input, the same nodes chosen), so that the
table plans for the INT8 file ``tools/quantize_onnx.py`` writes. A quantized layer graph is
``QuantizeLinear -> [DequantizeLinear -> Conv -> QuantizeLinear] -> DequantizeLinear``; ORT's profiler runs it as
``QuantizeLinear``, ``Transpose`` (NCHW to NHWC), ``QLinearConv`` (the bracket, fused), ``Transpose`` (back),
``DequantizeLinear`` (a 64-to-64 3x3 conv at 32x32: 18, 12, 183, 8, 12 us). The quantized demo network runs 38
``QLinearConv``, 8 ``QLinearAdd``, one ``NhwcMaxPool`` and, at its ends only, one ``QuantizeLinear`` and one
``Transpose`` at the input and 12 ``Transpose`` + 12 ``DequantizeLinear`` at the head outputs: between layers the
Q/DQ pairs fuse into the int8 kernels and the NHWC layout is kept. So an int8 layer is timed without
:data:`INT8_BOUNDARY_OPS` (its input quantization, output dequantization and the two layout transposes), as an
fp32 one is without its reorders. What the layers' kernels do not see: the residual adds, fused into the convs
in fp32, are kernels of their own in int8 (``QLinearAdd``, ~10 % of the demo network's time); the whole-model fit
spreads them over the layers. On the demo detector (256 px, batch 1, one thread, ``docs/deploy.md``) an int8 table
built with 15 runs per grid point fitted its calibration networks within +-2.3 %, and the knapsack's prunes to
0.9 / 0.85 of the int8 latency ran at 0.991 / 0.995 of the target. Targets below 0.84 are out of its reach: the
stem conv on the three input channels holds ~45 % of the int8 layers' time and is no faster at 8 outputs than at
16, and ORT's int8 convs run slower at 8 or 24 channels than at 16. With 5 runs per grid point on a loaded
machine, one preempted stem timing (1.57 ms for 0.85) left the fit without a slope: the least of a few runs is
the int8 grid's weak point where one layer holds that much of the time.

Clock: with one thread (the default) ORT runs every kernel on the calling thread, so each whole-graph call is
timed by that thread's CPU time (``time.thread_time``): on a loaded machine the wall clock adds the time other
processes hold the core, CPU time does not. With more threads, wall time (the pool's threads are not the
caller's). Layer kernels are the profiler's durations (microseconds, wall time), the least over the runs
(:func:`kernel_ms`). Every graph runs
in :func:`mmdet_adasap.utils.timing.time_round_robin`, round-robin with its peers.
"""
import io
import json
import os.path as osp
import tempfile
import time
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..pruning.channel_groups import TracedPart
from ..utils.timing import time_round_robin
from .onnx_detector import make_session
from .quantize import CalibrationImages, quantize_network

RUNTIME = 'onnxruntime'
PRECISIONS = ('fp32', 'int8')
#: what ORT adds around a layer exported alone and the network runs only at its ends: the NCHWc layout reorders of
#: the graph's input and output; not charged to the layer (``layer_time='kernel'``)
BOUNDARY_OPS = ('ReorderInput', 'ReorderOutput')
#: the same for a quantized (int8) layer graph: the quantization of its input, the dequantization of its output
#: and the NHWC transposes around the int8 conv (a layer exported alone has no ``Transpose`` of its own)
INT8_BOUNDARY_OPS = BOUNDARY_OPS + ('QuantizeLinear', 'DequantizeLinear', 'Transpose')


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r} for an ONNX Runtime latency table; choose one of '
                         f'{PRECISIONS} (--precision)')
    return precision


def profiled_session(graph: bytes, threads: int, prefix: str):
    """An ORT CPU session of ``graph`` (as :func:`~mmdet_adasap.deploy.onnx_detector.make_session` makes one) that
    records every kernel's duration (ORT's profiler, JSON under ``prefix``)."""
    import onnxruntime as ort  # optional runtime: only an ONNX Runtime session needs it
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
    opts.enable_profiling, opts.profile_file_prefix = True, prefix
    return ort.InferenceSession(graph, opts, providers=['CPUExecutionProvider'])


def kernel_ms(profile_file: str, skip: int, exclude: Sequence[str] = BOUNDARY_OPS) -> float:
    """The least, over a profiled session's runs (the first ``skip`` dropped: warm-up), of the summed durations of
    its kernels other than ``exclude`` (op names: :data:`BOUNDARY_OPS`, :data:`INT8_BOUNDARY_OPS`), in ms. The
    least, not the median: the profiler's durations are wall time, which a preemption only lengthens, and a
    layer's round-robin lasts a few milliseconds, so one busy spell of another process can cover most of its runs
    (seen: a 0.75 ms stem conv at 4.85 ms, median of 5, which left its table's fit without a slope)."""
    with open(profile_file) as f:
        events = json.load(f)
    runs = [(e['ts'], e['ts'] + e['dur']) for e in events if e.get('cat') == 'Session' and e['name'] == 'model_run']
    sums = [0.0] * len(runs)
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and \
                e.get('args', {}).get('op_name') not in exclude:
            i = next((k for k, (a, b) in enumerate(runs) if a <= e['ts'] <= b), None)
            if i is not None:
                sums[i] += e['dur'] / 1e3
    return min(sums[skip:] or sums)


def onnx_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    """``module`` traced at ``x`` (fixed shape: a table times one input size), as a serialised ONNX model with one
    input, ``input``."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings of the detector's shape arithmetic: shapes are fixed here
        torch.onnx.export(module.eval(), (x, ), buf, dynamo=False, opset_version=17, input_names=['input'])
    return buf.getvalue()


def quantize_graph(graph: bytes, x: torch.Tensor) -> bytes:
    """``graph`` (an fp32 export with one input, ``input``, of ``x``'s fixed shape) quantized as
    :func:`~mmdet_adasap.deploy.quantize.quantize_detector` quantizes a detector
    (:func:`~mmdet_adasap.deploy.quantize.quantize_network`, uint8 activations), calibrated on ``x``."""
    with tempfile.TemporaryDirectory(prefix='ort_int8_') as tmp:
        fp32, int8 = osp.join(tmp, 'fp32.onnx'), osp.join(tmp, 'int8.onnx')
        with open(fp32, 'wb') as f:
            f.write(graph)
        images = x.detach().cpu().float().numpy()
        quantize_network(fp32, int8, CalibrationImages(images, batch=len(images)), 'uint8')
        with open(int8, 'rb') as f:
            return f.read()


class OrtTiming:
    """Times modules by exporting each to ONNX and running it in an ONNX Runtime CPU session with ``threads``
    intra-op threads (set by :func:`~mmdet_adasap.pruning.latency_measure.measure_latency_table`); the backend
    protocol of :class:`~mmdet_adasap.pruning.latency_measure.TorchTiming`."""
    runtime, in_graph = RUNTIME, False

    def __init__(self, threads: int = 1, precision: str = 'fp32', warmup: int = 2, layer_time: str = 'kernel'):
        self.threads = int(threads)
        self.precision = check_precision(precision)
        self.warmup = int(warmup)
        if layer_time not in ('kernel', 'run'):
            raise ValueError(f"layer_time must be 'kernel' or 'run', got {layer_time!r}")
        self.layer_time = layer_time

    @property
    def boundary_ops(self) -> tuple:
        """The kernels of a layer graph not charged to the layer (:func:`kernel_ms`)."""
        return INT8_BOUNDARY_OPS if self.precision == 'int8' else BOUNDARY_OPS

    def graph(self, module: nn.Module, x: torch.Tensor) -> bytes:
        """``module`` at ``x`` as the ONNX graph this backend times: fp32, the export as it is; int8, the export
        quantized on ``x`` (:func:`quantize_graph`)."""
        graph = onnx_bytes(module, x)
        return quantize_graph(graph, x) if self.precision == 'int8' else graph

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
        graphs, inputs = [self.graph(m, x) for m, x in pairs], [x for _, x in pairs]
        if self.layer_time == 'run':
            return self.time_graphs(graphs, inputs, repeats)
        return self.time_kernels(graphs, inputs, repeats)

    def time_kernels(self, graphs: Sequence[bytes], inputs: Sequence[torch.Tensor], repeats: int) -> List[float]:
        """Least ms of each graph's own kernels (:func:`kernel_ms`: without :attr:`boundary_ops`), the graphs run
        round-robin, each session profiled."""
        with tempfile.TemporaryDirectory(prefix='ort_profile_') as tmp:
            sessions = [profiled_session(g, self.threads, osp.join(tmp, f'g{i}')) for i, g in enumerate(graphs)]
            feeds = [{'input': x.detach().cpu().float().numpy()} for x in inputs]
            calls = [lambda s=s, f=f: s.run(None, f) for s, f in zip(sessions, feeds)]
            time_round_robin(calls, repeats, warmup=self.warmup, clock=self.clock)  # the profiler records
            files = [s.end_profiling() for s in sessions]
            return [kernel_ms(f, self.warmup, self.boundary_ops) for f in files]

    def time_models(self, models: Sequence[nn.Module], shape, forward_fn, repeats: int,
                    names: Optional[Sequence[str]] = None) -> tuple:
        """(median ms of each model's traced part at ``shape``, exported with flat outputs like
        :func:`~mmdet_adasap.deploy.latency.export_network`; None: ORT has no per-module timings)."""
        if next(models[0].parameters()).device.type != 'cpu':
            raise ValueError('ONNX Runtime latency tables are timed on the CPU: build the table with the model on '
                             'the CPU (--device cpu)')
        x = torch.rand(*shape)
        graphs = [self.graph(TracedPart(m, forward_fn, flat_outputs=True), x) for m in models]
        return self.time_graphs(graphs, [x] * len(graphs), repeats), None
