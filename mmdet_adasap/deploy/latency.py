"""Latency of the deployed detector, dense vs pruned, in PyTorch and in ONNX Runtime (CPU).

Both runtimes run the *same* graphs, in two parts: ``network`` - the layers the FLOPs count covers (the
pruner's traced part: backbone, neck, head convs; ``extract_feat`` for two-stage detectors) - and ``deployed``
- the whole exported detector with preprocessing, box decoding and NMS (``onnx_export``'s module, eagerly in
PyTorch; its export in ONNX Runtime). So the columns compare runtimes, and each row's realised speed-up
(dense ms / pruned ms) can be read against the FLOPs reduction (dense FLOPs / pruned FLOPs). NMS cost depends
on how many boxes pass ``score_thr``: with untrained weights nearly all do, so only a trained checkpoint gives a
representative ``deployed`` row. Dense and pruned calls alternate within one process, so load on a shared
machine hits both alike; medians of ``repeats`` calls (:func:`mmdet_adasap.utils.timing.time_round_robin`,
the package's one timing function). Thread counts: ``torch.set_num_threads`` for PyTorch,
``intra_op_num_threads`` for ONNX Runtime.
"""
import os
import os.path as osp
import time
import warnings
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.utils import ProgressBar

from ..pruning.channel_groups import TracedPart
from ..utils.renamed import refuse_renamed
from ..utils.timing import time_round_robin
from .onnx_detector import make_session
from .onnx_export import build_graph, export_onnx

PARTS = ('network', 'deployed')

__getattr__ = refuse_renamed(__name__, {
    'latency_table': 'mmdet_adasap.deploy.latency.speedup_markdown ("latency table" names the lookup table of '
                     'mmdet_adasap.pruning.latency_table)',
    'NetworkGraph': 'mmdet_adasap.pruning.channel_groups.TracedPart(detector, flat_outputs=True)',
    '_median_ms': 'mmdet_adasap.utils.timing.time_round_robin'})


def _graph(model, part, hw):
    return TracedPart(model, flat_outputs=True).eval() if part == 'network' else build_graph(model, hw)


def export_network(model: torch.nn.Module, out_file: str, hw) -> str:
    """ONNX of the pruned part (:class:`~mmdet_adasap.pruning.channel_groups.TracedPart`, outputs flattened)
    with a dynamic batch (temporary file, then moved)."""
    x = torch.rand(1, 3, *hw)
    tmp = out_file + '.tmp'
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(TracedPart(model, flat_outputs=True).eval(), (x, ), tmp, dynamo=False, opset_version=17,
                          input_names=['input'], dynamic_axes={'input': {0: 'batch'}})
    os.replace(tmp, out_file)
    return out_file


def _pytorch_calls(models: Dict[str, torch.nn.Module], hw, batch: int, part: str):
    x = torch.rand(batch, 3, *hw) * 255
    graphs = [_graph(m, part, hw) for m in models.values()]

    def call(g):
        with torch.inference_mode():
            g(x)
    return [lambda g=g: call(g) for g in graphs]


def _ort_calls(files: Dict[str, str], hw, batch: int, threads: int):
    x = (torch.rand(batch, 3, *hw) * 255).numpy()
    sessions = [make_session(f, threads) for f in files.values()]
    return [lambda s=s: s.run(None, {'input': x}) for s in sessions]


def network_latency_ort(models: Sequence[torch.nn.Module], hw, batch: int, threads: int, repeats: int,
                        out_dir: str) -> List[float]:
    """Median ms of each model's network graph (:func:`export_network`: the pruned part up to the pre-NMS
    tensors, written to ``out_dir/<i>_network.onnx``) in ONNX Runtime, round-robin; with one thread timed by the
    calling thread's CPU time, as :class:`~mmdet_adasap.deploy.ort_timing.OrtTiming` times a table's models (ORT
    runs every kernel on the caller then; other processes' load does not count)."""
    files = {str(i): export_network(m, osp.join(out_dir, f'{i}_network.onnx'), hw) for i, m in enumerate(models)}
    clock = time.thread_time if threads == 1 else time.perf_counter
    return time_round_robin(_ort_calls(files, hw, batch, threads), repeats, warmup=2, clock=clock)


def measure_deploy_latency(models: Dict[str, torch.nn.Module], hw: Tuple[int, int], out_dir: str,
                           runtimes: Sequence[str] = ('pytorch', 'onnxruntime'), batches: Sequence[int] = (1, 8),
                           thread_counts: Sequence[int] = (1, None), repeats: int = 20) -> List[dict]:
    """One row per (part, runtime, batch, threads): ``{'part', 'runtime', 'batch', 'threads', <model name>: ms}``.

    ``models`` maps names (e.g. dense, pruned) to detectors; ``None`` in ``thread_counts`` means all cores.
    The ONNX files (dynamic batch) are written to ``out_dir/<name>.onnx`` (deployed) and
    ``out_dir/<name>_network.onnx``.
    """
    all_threads = os.cpu_count() or 1
    files = {part: {} for part in PARTS}
    if 'onnxruntime' in runtimes:
        for name, model in models.items():
            files['deployed'][name] = osp.join(out_dir, f'{name}.onnx')
            export_onnx(model, files['deployed'][name], hw, batch='dynamic')
            files['network'][name] = export_network(model, osp.join(out_dir, f'{name}_network.onnx'), hw)
    configs = [(p, r, b, t or all_threads) for p in PARTS for r in runtimes for b in batches for t in thread_counts]
    rows, before = [], torch.get_num_threads()
    bar = ProgressBar(len(configs))
    try:
        for part, runtime, batch, threads in configs:
            if runtime == 'pytorch':
                torch.set_num_threads(threads)
                fns = _pytorch_calls(models, hw, batch, part)
            else:
                fns = _ort_calls(files[part], hw, batch, threads)
            ms = time_round_robin(fns, repeats, warmup=2)
            rows.append(dict(part=part, runtime=runtime, batch=batch, threads=threads, **dict(zip(models, ms))))
            bar.update()
    finally:
        torch.set_num_threads(before)
    print()
    return rows


def speedup_markdown(rows: List[dict], flops_reduction: float, dense: str = 'dense', pruned: str = 'pruned'
                     ) -> List[str]:
    """Markdown lines: ms per batch, realised speed-up and its ratio to the FLOPs reduction (also added to
    each row as ``speedup`` / ``speedup_over_flops_reduction``)."""
    lines = ['| part | runtime | batch | threads | dense ms | pruned ms | speed-up | speed-up / FLOPs reduction |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        speedup = r[dense] / r[pruned]
        r['speedup'] = speedup
        r['speedup_over_flops_reduction'] = speedup / flops_reduction
        lines.append(f'| {r["part"]} | {r["runtime"]} | {r["batch"]} | {r["threads"]} | {r[dense]:.2f} | '
                     f'{r[pruned]:.2f} | {speedup:.2f}x | {speedup / flops_reduction:.2f} |')
    return lines
