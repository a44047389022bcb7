"""INT8 against fp32 in ONNX Runtime, per activation type (``tools/benchmark_int8.py`` is its command line).

The same fp32 export is quantized once per type of :data:`~mmdet_adasap.deploy.quantize.ACTIVATION_TYPES`
(``quantize_detector``: QDQ, per-channel int8 weights, the same calibration images), and every file is timed in
turns with the others (``time_round_robin``): the *network* (the file cut where its last convolutions end, as
the deployment report cuts it) at each batch, and the whole *detector* at batch 1, on real test images, one ORT
thread, timed by the calling thread's CPU time (so a loaded machine's other processes do not count). The ratio
to fp32 is what the INT8 goal is judged on: ORT's x86-64 int8 convolutions multiply uint8 activations by int8
weights, so the activation type decides whether INT8 is faster than fp32 at all.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Sequence

import numpy as np

from mmdet_adasap.deploy.onnx_detector import make_session
from mmdet_adasap.deploy.onnx_export import read_metadata
from mmdet_adasap.deploy.quantize import ACTIVATION_TYPES, check_onnx_file, quantize_detector
from mmdet_adasap.deploy.report import network_graph, timing_images
from mmdet_adasap.utils.timing import time_round_robin


def make_files(cfg, fp32: str, out_dir: str, calib_images: int, seed: int) -> Dict[str, str]:
    """``{'fp32': fp32, 'int8_<type>': file}``: one quantization of ``fp32`` per activation type."""
    check_onnx_file(fp32)
    os.makedirs(out_dir, exist_ok=True)
    files = {'fp32': fp32}
    for act in ACTIVATION_TYPES:
        files[f'int8_{act}'] = osp.join(out_dir, f'int8_{act}.onnx')
        quantize_detector(fp32, files[f'int8_{act}'], cfg, calib_images, seed, activations=act)
    return files


def time_files(cfg, files: Dict[str, str], out_dir: str, batches: Sequence[int], repeats: int,
               seed: int) -> List[dict]:
    """One row per (part, batch): ``dict(part, batch, ms={name: ms})``, every file timed in turns."""
    images = timing_images(cfg, read_metadata(files['fp32']), seed).astype(np.float32)
    nets = {k: make_session(network_graph(f, osp.join(out_dir, f'{k}_network.onnx')), 1) for k, f in files.items()}
    whole = {k: make_session(f, 1) for k, f in files.items()}
    rows = []
    for part, sessions, part_batches in (('network', nets, batches), ('detector', whole, [1])):
        for b in part_batches:
            feed = np.ascontiguousarray(np.resize(images, (b, ) + images.shape[1:]))
            calls = [lambda s=s: s.run(None, {'input': feed}) for s in sessions.values()]
            ms = time_round_robin(calls, repeats, warmup=2, clock=time.thread_time)
            rows.append(dict(part=part, batch=b, ms=dict(zip(sessions, ms))))
    return rows


def markdown(rows: List[dict]) -> str:
    names = list(rows[0]['ms'])
    lines = ['| part | batch | ' + ' | '.join(f'{n} ms' for n in names) + ' | '
             + ' | '.join(f'{n} / fp32' for n in names[1:]) + ' |', '|---' * (2 + 2 * len(names) - 1) + '|']
    for r in rows:
        ms = r['ms']
        lines.append(f'| {r["part"]} | {r["batch"]} | ' + ' | '.join(f'{ms[n]:.2f}' for n in names) + ' | '
                     + ' | '.join(f'{ms[n] / ms["fp32"]:.3f}' for n in names[1:]) + ' |')
    return '\n'.join(lines)


def benchmark(cfg, fp32: str, out_dir: str, calib_images: int = 200, seed: int = 0, batches=(1, 8),
              repeats: int = 30) -> dict:
    files = make_files(cfg, fp32, out_dir, calib_images, seed)
    rows = time_files(cfg, files, out_dir, batches, repeats, seed)
    return dict(files=files, rows=rows, markdown=markdown(rows))
