"""Robustness evaluation from Python: one call, a config and a checkpoint in, the result dict out."""
import os.path as osp
from typing import Iterable, Optional

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet_adasap.apis import fill_channels, load_config

from .corruptions import SEVERITIES, check_severities, resolve_corruptions


def evaluate_robustness(config: str, checkpoint: str, out_dir: str, corruptions='benchmark',
                        severities: Iterable[int] = SEVERITIES, cache_root: Optional[str] = None, seed: int = 0,
                        resume: bool = True, label: Optional[str] = None, plots: bool = True,
                        cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                        launcher: str = 'none', backend: str = 'pytorch', metric_key: Optional[str] = None) -> dict:
    """Evaluate ``checkpoint`` on the clean test set and every (corruption, severity); return the result dict
    (also written to ``out_dir/robustness.json`` with the markdown table and plots).

    For a quick look pass a subset, e.g. ``corruptions=['gaussian_noise', 'fog'], severities=[1, 3]``
    (the summary then says ``complete_benchmark: False``). ``cfg_options`` override config keys (e.g. the
    test dataloader's ``data_root``); logs go to ``work_dir`` (default ``out_dir``). ``backend='onnxruntime'``:
    ``checkpoint`` is an exported ``.onnx`` file, run by ONNX Runtime through the same loop and metric.
    The evaluator is the config's ``test_evaluator`` (one metric: VOCMetric, CocoMetric, ...); ``metric_key``
    names the key of its results that P / mPC / rPC are computed on (default ``pascal_voc/mAP`` for VOC,
    ``coco/bbox_mAP`` for COCO).
    """

    corruptions, severities = resolve_corruptions(corruptions), check_severities(severities)  # fail before building
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg = load_config(config, cfg_options, work_dir or out_dir)
    cfg.launcher = launcher
    if backend == 'onnxruntime':
        from mmdet_adasap.deploy import use_onnxruntime  # needs onnx / onnxruntime (optional)
        use_onnxruntime(cfg, checkpoint)
    elif backend == 'pytorch':
        cfg.load_from = checkpoint
        fill_channels(cfg, checkpoint)
    else:
        raise ValueError(f"backend must be 'pytorch' or 'onnxruntime', got {backend!r}")
    cfg.test_cfg = dict(type='RobustnessTestLoop', corruptions=corruptions, severities=list(severities),
                        cache_root=cache_root, out_dir=out_dir, resume=resume, seed=seed,
                        label=label or osp.splitext(osp.basename(checkpoint))[0], plots=plots,
                        metric_key=metric_key)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.test()
    return runner.test_loop.result
