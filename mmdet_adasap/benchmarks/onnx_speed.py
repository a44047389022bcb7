"""Deployed RTMDet / YOLOX, dense vs pruned: ONNX Runtime parity and realised speed-up against the FLOPs
reduction, in ONNX Runtime and PyTorch (``tools/onnx_speed.py`` is its command line).

Each detector is built from mmdet's config with tame random weights (``generality.build_random_detector``),
pruned one-shot to a FLOPs ratio at the measured input (``ChannelPruner.prune_one_shot`` +
``export_with_config``), exported with post-processing (dynamic batch) and judged by the parity check
(``mmdet_adasap.deploy.check_parity``); both are then timed by ``mmdet_adasap.deploy.latency`` (network =
what FLOPs count; deployed = preprocessing + network + decoding + NMS; dense and pruned in turns, medians).
Random weights put nearly every prior above ``score_thr``, so the deployed rows carry far more NMS work than a
trained model's; the network rows are the ones FLOPs predict. Where the pruner cannot follow a detector, the
dense half is reported with the pruner's message.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet_adasap.apis import params_and_flops
from mmdet_adasap.benchmarks.generality import MMDET_CONFIGS, build_random_detector
from mmdet_adasap.deploy import check_parity
from mmdet_adasap.deploy.latency import measure_deploy_latency, speedup_markdown
from mmdet_adasap.pruning import ChannelPruner

DETECTORS = {'RTMDet-tiny': f'{MMDET_CONFIGS}/rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
             'YOLOX-s': f'{MMDET_CONFIGS}/yolox/yolox_s_8xb8-300e_coco.py'}


def dense_and_pruned(config: str, side: int, ratio: float):
    """``({'dense': model[, 'pruned': model]}, pruned / dense FLOPs or None, the pruner's error or None)``."""
    model, _ = build_random_detector(config)
    shape = (1, 3, side, side)
    try:
        pruner = ChannelPruner(build_random_detector(config)[0], shape, target=dict(type='flops', ratio=ratio))
        pruner.prune_one_shot()
        pruned, _ = pruner.export_with_config()
    except (TypeError, ValueError, RuntimeError) as err:
        return {'dense': model}, None, f'{type(err).__name__}: {str(err).splitlines()[0]}'
    pruned = pruned.eval()
    flops = params_and_flops(pruned, shape)['flops'] / params_and_flops(model, shape)['flops']
    return {'dense': model, 'pruned': pruned}, flops, None


def benchmark(name: str, out_dir: str, side: int = 320, ratio: float = 0.5, batches: Sequence[int] = (1, 8),
              threads: int = 1, repeats: int = 10, parity_images: int = 2) -> dict:
    """``{'detector', 'flops_ratio', 'error', 'parity': {model: ParityReport}, 'latency': rows}`` for one of
    ``DETECTORS``; ONNX files go to ``out_dir/<name>/``."""
    models, flops, error = dense_and_pruned(DETECTORS[name], side, ratio)
    folder = osp.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    rows = measure_deploy_latency(models, (side, side), folder, batches=batches, thread_counts=(threads, ),
                                  repeats=repeats)
    parity = {k: check_parity(m, osp.join(folder, f'{k}.onnx'), batch=parity_images, threads=threads)
              for k, m in models.items()}
    return dict(detector=name, side=side, flops_ratio=flops, error=error, parity=parity, latency=rows)


def parity_markdown(results: List[dict]) -> List[str]:
    lines = ['| detector | model | verdict | pre-NMS max diff (boxes rel. to side; scores) | kept matched '
             '| decided by ties | kept max dbox / side | kept max dscore |', '|---|---|---|---|---|---|---|---|']
    for r in results:
        for model, p in r['parity'].items():
            pre = ', '.join(f'{k} {v:.1e}' for k, v in p.pre_nms.items())
            lines.append(f'| {r["detector"]} | {model} | {"pass" if p.ok else "FAIL"} | {pre} | '
                         f'{p.matched}/{p.detections} | {p.tie_explained} | {p.box_rel:.1e} | {p.score:.1e} |')
    return lines


def latency_markdown(result: dict) -> List[str]:
    """The speed-up table (dense and pruned), or the dense timings with the pruner's message."""
    if result['flops_ratio'] is not None:
        return [f'{result["detector"]} at {result["side"]} px, pruned to {result["flops_ratio"]:.3f} of the dense '
                f'FLOPs (reduction {1 / result["flops_ratio"]:.2f}x):', '',
                *speedup_markdown(result['latency'], 1 / result['flops_ratio'])]
    lines = [f'{result["detector"]} at {result["side"]} px, dense only (the pruner: {result["error"]}):', '',
             '| part | runtime | batch | threads | dense ms |', '|---|---|---|---|---|']
    lines += [f'| {r["part"]} | {r["runtime"]} | {r["batch"]} | {r["threads"]} | {r["dense"]:.2f} |'
              for r in result['latency']]
    return lines


def report(results: List[dict]) -> str:
    lines = ['### ONNX Runtime parity (random images, tame random weights)', '', *parity_markdown(results), '']
    for r in results:
        lines += ['### Latency: ' + r['detector'], '', *latency_markdown(r), '']
    return '\n'.join(lines)


def run(names: Optional[Sequence[str]], out_dir: str, **kwargs) -> Dict[str, object]:
    """Benchmark ``names`` (default: all of ``DETECTORS``); unknown names are refused listing the known ones."""
    names = list(names or DETECTORS)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f'unknown detector(s) {unknown}: choose from {sorted(DETECTORS)}')
    results = [benchmark(n, out_dir, **kwargs) for n in names]
    return dict(results=results, markdown=report(results))
