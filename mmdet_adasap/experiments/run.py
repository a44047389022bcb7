"""One run of the matrix: train (or resume) through the Runner, evaluate the export, write its record.

A run's folder holds ``run.json`` (what it is: written before training, so that a restarted matrix never
continues a run made with other settings), the Runner's checkpoints, ``pruned.pth``, ``robustness/`` (the
robustness loop's own per-set records, which resume) and, last, ``record.json`` (the numbers of the table,
written atomically): a run with a ``record.json`` is finished and never redone.
"""
import json
import os.path as osp
import time
from typing import Callable, Optional

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet_adasap.apis import build_detector as apis_build_detector
from mmdet_adasap.apis import find_resize_shape, load_config
from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.voc_c import atomic_write_json

RECORD_SCHEMA = 'mmdet_adasap.compare.run/1'
RECORD_FILE, SPEC_FILE, EXPORT_FILE = 'record.json', 'run.json', 'pruned.pth'


def read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_same(path: str, found: dict, expected: dict, what: str) -> None:
    """Refuse to continue or tabulate a run made under other settings, naming the run and the field."""
    for key in sorted(set(found) | set(expected)):
        if found.get(key) != expected.get(key):
            raise ValueError(f'{path}: this {what} was made with {key}={found.get(key)!r}, but the matrix now has '
                             f'{key}={expected.get(key)!r} (other dense checkpoint, data or protocol); use another '
                             'output folder or delete that run to redo it')


def train(config: str, options: dict, work_dir: str, transform: Optional[Callable] = None, hooks=()) -> float:
    """Train as ``tools/train.py CONFIG --work-dir W --cfg-options ...`` does, resuming from the work dir's last
    checkpoint when there is one; returns the wall time."""
    cfg = load_config(config, options, work_dir)
    cfg.launcher = 'none'
    if transform is not None:
        cfg = transform(cfg)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cfg.resume, cfg.load_from = True, None
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    for hook in hooks:
        runner.register_hook(hook, 'LOWEST')
    runner.train()
    return time.perf_counter() - start


def build_model(cfg):
    """The config's detector, untrained (:func:`mmdet_adasap.apis.build_detector`, no checkpoint)."""
    return apis_build_detector(cfg)[0]


def build_detector(config: str, checkpoint: str, options: dict, pruned: bool):
    """The detector of ``checkpoint`` in eval mode, and its trace input shape."""
    cfg = load_config(config, options)
    model, _ = apis_build_detector(cfg, checkpoint, expect='pruned' if pruned else 'dense')
    shape = find_resize_shape(cfg)
    if shape is None:
        raise ValueError(f'{config}: no Resize scale in the test pipeline to measure FLOPs and latency at')
    return model.eval(), shape


def evaluate(config: str, checkpoint: str, work_dir: str, corruptions, severities, eval_options: dict,
             cache_root, label: str) -> dict:
    """The robustness result of ``checkpoint`` (resumes finished sets in ``work_dir/robustness``)."""
    return evaluate_robustness(config, checkpoint, osp.join(work_dir, 'robustness'), corruptions=corruptions,
                               severities=severities, cache_root=cache_root, label=label, plots=False,
                               cfg_options=dict(eval_options, log_level='WARNING'))


def scores(result: dict) -> dict:
    """The table's robustness numbers of one result, in % (mAP x 100, rPC x 100)."""
    s = result['summary']
    pct = lambda v: None if v is None else 100 * v  # noqa: E731
    return dict(clean_map=pct(s['P']), mpc=pct(s['mPC']), rpc=pct(s['rPC']), mpc_unseen=pct(s['mPC_holdout']),
                rpc_unseen=pct(s['rPC_holdout']), per_category={k: pct(v) for k, v in s['per_category'].items()})


def write_record(path: str, record: dict) -> dict:
    atomic_write_json(path, dict(record, schema=RECORD_SCHEMA))
    return record
