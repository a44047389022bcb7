"""Robustness evaluation as mmengine loops: the clean set, then every (corruption, severity) set.

The evaluator is the config's own metric (one): a ``VOCMetric`` is upgraded to ``VOCPerClassMetric`` (same
mAP, plus per-class APs); any other metric (``CocoMetric``, ...) is used as it is. P / mPC / rPC are computed
on one primary key of its results (``metric_key``; default ``pascal_voc/mAP`` / ``coco/bbox_mAP``), and every
scalar it returns is kept per set.

A config asks for it with ``test_cfg = dict(type='RobustnessTestLoop', corruptions=..., severities=...)``
(or ``val_cfg = dict(type='RobustnessValLoop', ...)`` during training). Each set is the config's test
dataloader with ``LoadImageFromFile`` swapped for :class:`.transforms.LoadCorruptedImageFromFile`, which
reads the VOC-C cache when the set is complete there and renders on the fly otherwise. Sharding, result
collection and the metric are mmengine's / mmdet's, so several GPUs work through the normal launcher.

Every finished set is written to ``<out_dir>/sets/`` (atomically, on rank 0) with a fingerprint of the
weights and the data; a rerun skips sets whose fingerprint matches and refuses a directory holding
another model's results.
"""
import copy
import hashlib
import json
import logging
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop

from mmdet.registry import LOOPS

from .corruptions import SEVERITIES, check_severities, resolve_corruptions
from .metric import PER_CLASS_PREFIX
from .report import write_reports
from .result import build_result, nan_to_none
from ..utils.io import atomic_write_json
from .voc_c import cache_image_keys, missing_cached_images, read_manifest


VOC_METRICS = ('VOCMetric', 'VOCPerClassMetric')
VOC_METRIC_KEY = 'pascal_voc/mAP'
# config keys of a metric that do not change its numbers (paths, collection, output files)
_NEUTRAL_METRIC_ARGS = ('type', 'ann_file', 'backend_args', 'file_client_args', 'collect_device', 'collect_dir',
                        'outfile_prefix', 'format_only')


def _metric_type(cfg: dict) -> str:
    return str(cfg.get('type', '')).split('.')[-1]  # 'mmdet.CocoMetric' -> 'CocoMetric'


def _evaluator_metric_cfg(evaluator) -> dict:
    """The one metric config of ``evaluator`` (a dict, a list of one, or an ``Evaluator`` dict); several
    metrics are an error naming them: P / mPC / rPC are computed on one primary key."""
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    if isinstance(evaluator, dict) and evaluator.get('type') == 'Evaluator':
        metrics = evaluator['metrics'] if isinstance(evaluator['metrics'], (list, tuple)) else [evaluator['metrics']]
    if len(metrics) != 1 or not isinstance(metrics[0], dict):
        names = [m.get('type') if isinstance(m, dict) else type(m).__name__ for m in metrics]
        raise ValueError(f'robustness evaluation computes P / mPC / rPC on one primary key and needs exactly one '
                         f'metric (config dict) as evaluator; got {len(metrics)}: {names} ({evaluator!r})')
    return copy.deepcopy(dict(metrics[0]))


def _robustness_evaluator_cfg(evaluator) -> dict:
    """The config's metric; a ``VOCMetric`` becomes ``VOCPerClassMetric`` (same arguments and mAP, plus
    per-class APs). Any other metric (``CocoMetric``, ...) is used as it is."""
    cfg = _evaluator_metric_cfg(evaluator)
    if _metric_type(cfg) in VOC_METRICS:
        return dict(cfg, type='VOCPerClassMetric')
    return cfg


def default_metric_key(metric_cfg: dict) -> Optional[str]:
    """The primary key of a metric: ``pascal_voc/mAP`` (VOC), ``coco/bbox_mAP`` (COCO; ``<segm>_mAP`` if
    bbox is not evaluated); ``None`` for other metrics (the key must then be named)."""
    kind = _metric_type(metric_cfg)
    if kind in VOC_METRICS:
        return f'{metric_cfg.get("prefix") or "pascal_voc"}/mAP'
    if kind == 'CocoMetric':
        metrics = metric_cfg.get('metric', 'bbox')
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        prefix = metric_cfg.get('prefix') or 'coco'
        return f'{prefix}/bbox_mAP' if 'bbox' in metrics else f'{prefix}/{metrics[0]}_mAP'
    return None


COCO_STATS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')  # CocoMetric's keys per bbox / segm


def known_metric_keys(metric_cfg: dict) -> Optional[List[str]]:
    """The aggregate keys a VOC metric or a bbox / segm ``CocoMetric`` returns, known before any evaluation (so a
    matrix refuses a wrong key before it trains anything); ``None`` for other metrics. Per-class keys
    (``AP_<class>``, ``<class>_precision``) depend on the data set and are checked on the clean set."""
    cfg = _robustness_evaluator_cfg(metric_cfg)
    kind = _metric_type(cfg)
    if kind in VOC_METRICS:
        prefix = cfg.get('prefix') or 'pascal_voc'
        thrs = cfg.get('iou_thrs', 0.5)
        thrs = [thrs] if isinstance(thrs, (int, float)) else list(thrs)
        return [f'{prefix}/mAP'] + [f'{prefix}/AP{int(t * 100):02d}' for t in thrs]
    if kind == 'CocoMetric':
        types = cfg.get('metric', 'bbox')
        types = [types] if isinstance(types, str) else list(types)
        prefix = cfg.get('prefix') or 'coco'
        return [f'{prefix}/{t}_{s}' for t in types for s in COCO_STATS] if set(types) <= {'bbox', 'segm'} else None
    return None


def primary_metric(evaluator, metric_key: Optional[str] = None) -> Tuple[str, str]:
    """(metric type, primary key) of an evaluator config as the loops pick them: exactly one metric (several: an
    error naming them), the key ``metric_key`` or its default. A key the metric does not return (where its keys
    are known up front) or a metric with no default key is an error listing the keys and naming the fix."""
    cfg = _robustness_evaluator_cfg(evaluator)
    kind, key = _metric_type(cfg), metric_key or default_metric_key(cfg)
    known = known_metric_keys(cfg)
    short = (key or '').split('/', 1)[-1]
    per_class = short.startswith(PER_CLASS_PREFIX) or short.endswith('_precision')
    if key is None or (known is not None and key not in known and not per_class):
        what = f'metric key {key!r} is not among' if key else f'{kind} has no default primary key; name one of'
        listed = ', '.join(known) if known else '(known after an evaluation)'
        raise ValueError(f'{what} the keys {kind} returns: {listed} (choose with metric_key=..., --metric-key on '
                         'the command line, evaluation.metric_key in a matrix)')
    return kind, key


def _scalars(metrics: dict) -> Dict[str, float]:
    """Every scalar the metric returned (numbers and 0-d arrays), as floats."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
            value = value.item()
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def _same_fingerprint(stored: Optional[dict], current: dict) -> bool:
    """Equal fingerprints; a record written before the metric was part of it counts as VOC's default key."""
    if isinstance(stored, dict) and 'metric_key' not in stored and 'eval_mode' in stored:
        stored = dict(stored, metric_type='VOCMetric', metric_key=VOC_METRIC_KEY)
    return stored == current


def _swap_loader(node, make):
    """Replace every ``LoadImageFromFile`` in (nested) dataset pipelines; returns how many were replaced."""
    count = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'pipeline' and isinstance(value, list):
                for i, step in enumerate(value):
                    if isinstance(step, dict) and step.get('type') in ('LoadImageFromFile', 'mmcv.LoadImageFromFile'):
                        value[i] = make(step)
                        count += 1
            else:
                count += _swap_loader(value, make)
    elif isinstance(node, list):
        count += sum(_swap_loader(v, make) for v in node)
    return count


def weights_sha256(model: torch.nn.Module) -> str:
    """Fingerprint of the weights actually evaluated (independent of checkpoint paths)."""
    h = hashlib.sha256()
    module = getattr(model, 'module', model)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to('cpu').contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if tensor.numel() else b'')
    return h.hexdigest()


class _RobustnessMixin:
    """The shared run of both loops; ``_stage`` is 'test' or 'val' (which hooks fire)."""

    _stage = 'test'

    def _setup(self, dataloader, evaluator, corruptions, severities, cache_root, out_dir, resume, seed, label,
               plots, metric_key=None) -> dict:
        """Checks and stores the settings; returns the evaluator config for the base loop."""
        if not isinstance(dataloader, dict):
            raise TypeError('the robustness loops rebuild the dataloader per set and need its config (a dict)')
        self._dataloader_cfg = copy.deepcopy(dataloader)
        self.corruptions = resolve_corruptions(corruptions)
        self.severities = check_severities(severities)
        self.cache_root = cache_root
        self.out_dir = out_dir
        self.resume = resume
        self.seed = int(seed)
        self.label = label
        self.plots = plots
        self.result: Optional[dict] = None
        manifest = read_manifest(cache_root) if cache_root else None
        if cache_root and manifest is None:
            raise FileNotFoundError(f'cache_root {cache_root!r} is not a VOC-C cache (no voc_c.json); render one '
                                    'with tools/make_voc_c.py or leave cache_root unset to corrupt on the fly')
        if manifest is not None and manifest['seed'] != self.seed:
            raise ValueError(f'seed={self.seed} differs from the seed {manifest["seed"]} of the cache {cache_root!r}')
        self._manifest = manifest
        self._metric_cfg = _robustness_evaluator_cfg(evaluator)
        self.metric_type = _metric_type(self._metric_cfg)
        self.metric_key = metric_key or default_metric_key(self._metric_cfg)
        return self._metric_cfg

    # ------------------------------------------------------------------ data
    def _dataset_info(self, dataset) -> dict:
        ids = [str(dataset.get_data_info(i).get('img_id', i)) for i in range(len(dataset))]
        meta = dataset.metainfo
        ds_cfg = self._dataloader_cfg['dataset']
        return dict(type=ds_cfg.get('type'), data_root=ds_cfg.get('data_root'), ann_file=ds_cfg.get('ann_file'),
                    classes=list(meta['classes']), num_images=len(ids),
                    image_ids_sha256=hashlib.sha256('\n'.join(ids).encode()).hexdigest())

    def _cache_rels(self, dataset) -> Optional[List[str]]:
        """The images' paths relative to the cache's source, checked once, before the clean set: every image
        under the source, seeded with this dataset's ids (else the cache belongs to another set). None: no cache."""
        if self._manifest is None:
            return None
        root = self._manifest['source_root']
        rels = []
        for i in range(len(dataset)):
            path = osp.realpath(dataset.get_data_info(i)['img_path'])
            rel = osp.relpath(path, root)
            if rel.startswith('..'):
                raise ValueError(f'image {path!r} is not under {root!r}, the source of the VOC-C cache '
                                 f'{self.cache_root!r}: the cache belongs to another data set')
            rels.append(rel)
        self._check_cache_keys(dataset, rels)
        return rels

    def _cache_source(self, rels: Optional[List[str]], corruption, severity) -> Optional[str]:
        """The cache root if it holds this whole set, else None (render on the fly)."""
        if rels is None:
            return None
        missing = missing_cached_images(self.cache_root, corruption, severity, rels)
        if missing and len(missing) < len(rels):
            print_log(f'[robustness] {corruption} s{severity}: cache incomplete ({len(missing)}/{len(rels)} missing, '
                      f'e.g. {missing[0]}); rendering this set on the fly', logger='current')
        return None if missing else self.cache_root

    def _check_cache_keys(self, dataset, rels: List[str]) -> None:
        """The cache's images must be seeded with the keys this dataset corrupts them with on the fly (its
        ``img_id``: VOC's file stem, COCO's image id), else a cached copy and an on-the-fly one differ: a cache
        of the same images made from another annotation format or file is refused."""
        keys = cache_image_keys(self.cache_root)  # None: VOC, the file stem
        for i, rel in enumerate(rels):
            info = dataset.get_data_info(i)
            ours = str(info.get('img_id', osp.splitext(osp.basename(info['img_path']))[0]))
            theirs = osp.splitext(osp.basename(rel))[0] if keys is None else keys.get(rel)
            if theirs is not None and theirs != ours:
                kind = 'VOC ids (file stems)' if keys is None else 'the image ids of another annotation file'
                raise ValueError(f'the cache {self.cache_root!r} seeded {rel!r} as {theirs!r} ({kind}), this dataset '
                                 f'gives it img_id {ours!r}: its cached images would differ from the on-the-fly '
                                 'ones; render a cache from this dataset (tools/make_voc_c.py, --coco-ann for a '
                                 'COCO-format set) or leave the cache unset')

    def _set_dataloader(self, corruption, severity, cache_root):
        cfg = copy.deepcopy(self._dataloader_cfg)
        cfg['persistent_workers'] = False  # a new loader per set: persistent workers would pile up

        def make(step):
            args = {k: v for k, v in step.items() if k != 'type'}
            return dict(type='LoadCorruptedImageFromFile', corruption=corruption, severity=severity,
                        cache_root=cache_root, seed=self.seed, **args)

        if _swap_loader(cfg['dataset'], make) == 0:
            raise ValueError('no LoadImageFromFile in the test pipeline to replace with the corrupted loader')
        return self.runner.build_dataloader(cfg, seed=self.runner.seed)

    # ------------------------------------------------------------------ bookkeeping
    def _set_file(self, name: str) -> str:
        return osp.join(self.out_dir, 'sets', name.replace('/', '-s') + '.json')

    def _load_finished(self, fingerprint: dict, names: List[str]) -> Dict[str, dict]:
        """Sets already in ``out_dir`` for these weights and data (read on rank 0, shared with all ranks, and
        a mismatch raised on every rank so that no rank is left waiting)."""
        finished, error = {}, None
        if is_main_process() and self.resume and self.out_dir:
            for name in names:
                path = self._set_file(name)
                if not osp.isfile(path):
                    continue
                with open(path) as f:
                    record = json.load(f)
                if not _same_fingerprint(record.get('fingerprint'), fingerprint):
                    error = (f'{path} holds results of other weights, data or settings '
                             f'({record.get("fingerprint")} vs {fingerprint}); use another output '
                             'directory or resume=False (--no-resume) to recompute')
                    break
                finished[name] = record
        box = [(finished, error)]
        broadcast_object_list(box)
        finished, error = box[0]
        if error:
            raise ValueError(error)
        return finished

    def _hook(self, event: str, **kwargs):
        self.runner.call_hook(event.replace('STAGE', self._stage), **kwargs)

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        self._hook('before_STAGE')
        self._hook('before_STAGE_epoch')
        self.runner.model.eval()
        clean_loader = self.dataloader
        dataset = clean_loader.dataset
        info = self._dataset_info(dataset)
        metric = self.evaluator.metrics[0]
        fingerprint = self._fingerprint(info, metric)
        rels = self._cache_rels(dataset)  # a cache of another set is refused before anything is evaluated
        names = ['clean'] + [f'{c}/{s}' for c in self.corruptions for s in self.severities]
        finished = self._load_finished(fingerprint, names)
        records = {}
        try:
            for k, name in enumerate(names):
                if name in finished:
                    records[name] = finished[name]
                    print_log(f'[robustness] [{k + 1}/{len(names)}] {name}: done before, '
                              f'{self._key_label} {records[name]["mAP"]:.4f}', logger='current')
                    continue
                if name == 'clean':
                    corruption = severity = None
                    source = 'clean'
                    self.dataloader = clean_loader
                else:
                    corruption, severity = name.split('/')[0], int(name.split('/')[1])
                    cache = self._cache_source(rels, corruption, severity)
                    source = f'cache:{self._manifest["format"]}' if cache else 'on_the_fly'
                    self.dataloader = self._set_dataloader(corruption, severity, cache)
                start = time.perf_counter()
                with torch.no_grad():
                    for idx, data_batch in enumerate(self.dataloader):
                        self.run_iter(idx, data_batch)
                metrics = self._no_detections(self.evaluator.evaluate(len(self.dataloader.dataset)), name)
                self._check_key(metrics)  # on the clean set, i.e. before any corrupted set is evaluated
                seconds = time.perf_counter() - start
                records[name] = self._record(name, corruption, severity, source, metrics, seconds, fingerprint)
                if is_main_process() and self.out_dir:
                    atomic_write_json(self._set_file(name), nan_to_none(records[name]))
                print_log(f'[robustness] [{k + 1}/{len(names)}] {name}: {self._key_label} '
                          f'{records[name]["mAP"]:.4f} ({source}, {seconds:.1f} s)', logger='current')
        finally:
            self.dataloader = clean_loader
        self.result = self._result(records, info, metric)
        if is_main_process() and self.out_dir:
            write_reports(self.result, self.out_dir, plots=self.plots)
        s = self.result['summary']
        scalars = {self.metric_key: s['P'], 'robustness/P': s['P']}
        for key in ('mPC', 'rPC', 'mPC_holdout', 'rPC_holdout'):
            if s[key] is not None:
                scalars[f'robustness/{key}'] = s[key]
        self._hook('after_STAGE_epoch', metrics=scalars)
        self._hook('after_STAGE')
        return scalars

    @property
    def _key_label(self) -> str:
        return 'mAP' if self.metric_type in VOC_METRICS else self.metric_key

    def _fingerprint(self, info: dict, metric) -> dict:
        """What a stored set must match to be reused: weights, images, classes, the metric and its key, seed."""
        fp = dict(weights_sha256=weights_sha256(self.runner.model), image_ids_sha256=info['image_ids_sha256'],
                  classes=info['classes'])
        if self.metric_type in VOC_METRICS:
            fp.update(eval_mode=metric.eval_mode, iou_thr=metric.iou_thrs[0])
        else:
            fp.update(metric_args={k: v for k, v in sorted(self._metric_cfg.items())
                                   if k not in _NEUTRAL_METRIC_ARGS})
        fp.update(metric_type='VOCMetric' if self.metric_type in VOC_METRICS else self.metric_type,
                  metric_key=self.metric_key, seed=self.seed,
                  lossy_cache=(self._manifest or {}).get('jpeg_quality'))  # png cache == on the fly
        return json.loads(json.dumps(fp, default=str))  # as it reads back from a record

    def _no_detections(self, metrics: dict, name: str) -> dict:
        """``CocoMetric`` returns nothing at all when the model detects nothing in a whole set (it logs 'The testing
        results of the whole dataset is empty.'); its AP / AR are then 0, which is what each known key gets."""
        known = known_metric_keys(self._metric_cfg) if self.metric_type == 'CocoMetric' and not metrics else None
        if not known:
            return metrics
        print_log(f'[robustness] {name}: no detection in the whole set; CocoMetric returned nothing, its '
                  f'{len(known)} AP keys count as 0', logger='current', level=logging.WARNING)
        return {k: 0.0 for k in known}

    def _check_key(self, metrics: dict) -> None:
        if self.metric_key is None or self.metric_key not in metrics:
            keys = ', '.join(sorted(_scalars(metrics))) or '(none)'
            what = (f'metric key {self.metric_key!r} is not among' if self.metric_key else
                    f'{self.metric_type} has no default primary key; name one of')
            raise ValueError(f'{what} the keys {self.metric_type} returned: {keys} '
                             '(choose with metric_key=..., --metric-key on the command line)')

    def _per_class(self, metrics: dict, classes: Sequence[str]) -> dict:
        """Per-class values matching the primary key where the metric gives them: VOC's ``AP_<class>``;
        ``CocoMetric(classwise=True)``'s ``<class>_precision`` (AP@[.5:.95], so only for a ``*_mAP`` key of a
        single-type CocoMetric). Otherwise empty."""
        if self.metric_type in VOC_METRICS:
            out = {}
            for key, value in metrics.items():
                short = key.split('/', 1)[-1]
                if short.startswith(PER_CLASS_PREFIX):
                    out[short[len(PER_CLASS_PREFIX):]] = value
            return out
        if self.metric_type == 'CocoMetric' and self._metric_cfg.get('classwise'):
            types = self._metric_cfg.get('metric', 'bbox')
            types = [types] if isinstance(types, str) else list(types)
            prefix = self._metric_cfg.get('prefix') or 'coco'
            if len(types) == 1 and self.metric_key == f'{prefix}/{types[0]}_mAP':
                return {c: float(metrics[f'{prefix}/{c}_precision']) for c in classes
                        if f'{prefix}/{c}_precision' in metrics}
        return {}

    def _record(self, name, corruption, severity, source, metrics, seconds, fingerprint) -> dict:
        """One set: ``mAP`` is the primary key's value (the name is the schema's, whatever the metric),
        ``metrics`` every scalar the metric returned."""
        return dict(set=name, corruption=corruption, severity=severity, mAP=float(metrics[self.metric_key]),
                    metric_key=self.metric_key, per_class=self._per_class(metrics, fingerprint['classes']),
                    metrics=_scalars(metrics), source=source, seconds=seconds, fingerprint=fingerprint)

    def _result(self, records: Dict[str, dict], info: dict, metric) -> dict:
        load_from = getattr(self.runner, '_load_from', None)
        model = dict(label=self.label or self.runner.experiment_name, checkpoint=load_from,
                     weights_sha256=records['clean']['fingerprint']['weights_sha256'])
        if self.metric_type in VOC_METRICS:
            protocol = dict(metric=f'AP{int(round(metric.iou_thrs[0] * 100)):02d}', iou_thr=metric.iou_thrs[0],
                            eval_mode=metric.eval_mode)
        else:
            protocol = dict(metric=self.metric_key, iou_thr=None, eval_mode=None)
        protocol.update(metric_key=self.metric_key, metric_type=records['clean']['fingerprint']['metric_type'],
                        seed=self.seed, cache_root=self.cache_root,
                        cache_format=self._manifest['format'] if self._manifest else None)
        return build_result(records, self.corruptions, self.severities, model, info, protocol)


@LOOPS.register_module()
class RobustnessTestLoop(_RobustnessMixin, TestLoop):
    """``TestLoop`` over clean + corrupted sets.

    Args:
        corruptions: a selection for :func:`~.corruptions.resolve_corruptions` (default: the 15 of mPC).
        severities: subset of 1..5.
        cache_root: VOC-C cache from ``tools/make_voc_c.py`` (complete sets are read from it).
        out_dir: where per-set records and the reports go (default ``<work_dir>/robustness``).
        resume: skip sets already in ``out_dir`` for the same weights and data.
        seed: base seed of the corruptions (must equal the cache's).
        label: model name in reports (default: the experiment name).
        plots: write the PNG plots.
        metric_key: the key of the evaluator's results that P / mPC / rPC are computed on (default
            ``pascal_voc/mAP`` for ``VOCMetric``, ``coco/bbox_mAP`` for ``CocoMetric``; e.g.
            ``coco/bbox_mAP_50``). Every scalar the metric returns is kept per set.
    """
    _stage = 'test'

    def __init__(self, runner, dataloader, evaluator, corruptions='benchmark', severities: Sequence[int] = SEVERITIES,
                 cache_root: Optional[str] = None, out_dir: Optional[str] = None, resume: bool = True, seed: int = 0,
                 label: Optional[str] = None, plots: bool = True, fp16: bool = False,
                 metric_key: Optional[str] = None):
        evaluator = self._setup(dataloader, evaluator, corruptions, severities, cache_root,
                                out_dir or osp.join(runner.work_dir, 'robustness'), resume, seed, label, plots,
                                metric_key)
        super().__init__(runner, dataloader, evaluator, fp16)


@LOOPS.register_module()
class RobustnessValLoop(_RobustnessMixin, ValLoop):
    """``ValLoop`` over clean + corrupted sets, for validation during training (pick a small subset).

    Returns the primary key (clean; ``pascal_voc/mAP`` for VOC) and ``robustness/mPC`` / ``robustness/rPC``,
    so ``save_best`` can use either. Reports go to ``<out_dir or work_dir/robustness>/iter_<N>``; no
    resumption (the weights change).
    """
    _stage = 'val'

    def __init__(self, runner, dataloader, evaluator, corruptions='benchmark', severities: Sequence[int] = (3,),
                 cache_root: Optional[str] = None, out_dir: Optional[str] = None, seed: int = 0,
                 plots: bool = False, fp16: bool = False, metric_key: Optional[str] = None):
        self._base_out_dir = out_dir or osp.join(runner.work_dir, 'robustness')
        evaluator = self._setup(dataloader, evaluator, corruptions, severities, cache_root, self._base_out_dir,
                                False, seed, None, plots, metric_key)
        super().__init__(runner, dataloader, evaluator, fp16)

    def run(self) -> dict:
        self.out_dir = osp.join(self._base_out_dir, f'iter_{self.runner.iter}')
        return super().run()
