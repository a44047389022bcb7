"""The robustness result: its schema, how it is built, loaded, summarised and checked for comparability.

One home for what a ``robustness.json`` is, so that the loops that write it (:mod:`.loop`), the reports that
render it (:mod:`.report`) and the method comparison (:mod:`mmdet_adasap.experiments`) agree on it and none of
them imports another to learn it.

Summary: P / mPC / rPC and the per-corruption, per-severity, per-category and per-class tables (Michaelis et
al. 2019). Input is the ``clean`` and ``corrupted`` part of a result::

    clean     = {'mAP': float, 'per_class': {class: AP or None}}   # 'mAP': the value of the primary metric key
    corrupted = {corruption: {'<severity>': {'mAP': float, 'per_class': {...}}}}

mPC = mean over benchmark corruptions of the mean over severities (= the mean over all benchmark sets, since
the grid must be rectangular); the holdout corruptions are reported apart (``mPC_holdout``) and never mixed
into mPC. A class without ground truth has AP ``None`` and is left out of class means, as ``eval_map`` does.
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

from .corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_GROUPS, corruption_group, is_holdout

RESULT_SCHEMA = 'mmdet_adasap.robustness/1'
RESULT_FILE = 'robustness.json'
CORRUPTION_NOTE = 'applied to the BGR image as loaded, at native resolution, before resizing (Pascal-C protocol)'
# what must agree between two results before their numbers may stand side by side
COMPARABLE_KEYS = (('dataset', 'classes'), ('dataset', 'image_ids_sha256'), ('dataset', 'num_images'),
                   ('protocol', 'eval_mode'), ('protocol', 'iou_thr'), ('protocol', 'metric_key'))
#: the primary key of results written before the key was recorded (they are all VOC AP)
LEGACY_METRIC_KEY = 'pascal_voc/mAP'


def metric_key(result: dict) -> str:
    """The metric key P / mPC / rPC of ``result`` were computed on (``pascal_voc/mAP`` for older results)."""
    return result.get('protocol', {}).get('metric_key') or LEGACY_METRIC_KEY
GRID_KEYS = ('benchmark_corruptions', 'holdout_corruptions', 'severities')


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def check_grid(corrupted: Dict[str, Dict[str, dict]]) -> List[int]:
    """The common severities of every corruption; a ragged grid would bias the means, so it is an error."""
    severities = None
    for name, by_sev in corrupted.items():
        corruption_group(name)  # validates the name
        sev = sorted(int(s) for s in by_sev)
        if severities is None:
            severities = sev
        elif sev != severities:
            raise ValueError(f'corruption {name!r} was evaluated at severities {sev}, the others at {severities}; '
                             'mPC needs the same severities for every corruption')
    return severities or []


def summarize(clean: dict, corrupted: Dict[str, Dict[str, dict]]) -> dict:
    """All aggregates of one model's results (pure function of the per-set mAPs / APs)."""
    severities = check_grid(corrupted)
    names = [c for c in ALL_CORRUPTIONS if c in corrupted]
    benchmark = [c for c in names if not is_holdout(c)]
    holdout = [c for c in names if is_holdout(c)]
    P = clean['mAP']

    per_corruption = {}
    for c in names:
        by_sev = {str(s): corrupted[c][str(s)]['mAP'] for s in severities}
        per_corruption[c] = dict(group=corruption_group(c), holdout=is_holdout(c), by_severity=by_sev,
                                 mean=_mean(by_sev.values()))
    mPC = _mean(per_corruption[c]['mean'] for c in benchmark)
    mPC_holdout = _mean(per_corruption[c]['mean'] for c in holdout)
    per_severity = {str(s): _mean(corrupted[c][str(s)]['mAP'] for c in benchmark) for s in severities}
    per_category = {}
    for group in CORRUPTION_GROUPS:
        members = [c for c in benchmark if per_corruption[c]['group'] == group]
        if members:
            per_category[group] = _mean(per_corruption[c]['mean'] for c in members)
    per_class = {}
    for cls, ap in clean['per_class'].items():
        pc = _mean(_mean(corrupted[c][str(s)]['per_class'].get(cls) for s in severities) for c in benchmark) \
            if ap is not None else None
        per_class[cls] = dict(P=ap, mPC=pc, rPC=_ratio(pc, ap))
    return dict(
        P=P, mPC=mPC, rPC=_ratio(mPC, P), mPC_holdout=mPC_holdout, rPC_holdout=_ratio(mPC_holdout, P),
        benchmark_corruptions=benchmark, holdout_corruptions=holdout, severities=severities,
        complete_benchmark=(set(benchmark) == set(BENCHMARK_CORRUPTIONS) and severities == [1, 2, 3, 4, 5]),
        per_corruption=per_corruption, per_severity=per_severity, per_category=per_category, per_class=per_class)


def check_comparable(results: Sequence[dict], names: Sequence[str], same_grid: bool = False) -> None:
    """Refuse to put results from different data sets, class lists or AP protocols side by side;
    ``same_grid``: also the same corruptions and severities (so that their mPCs mean the same thing)."""
    ref, ref_name = results[0], names[0]
    for res, name in zip(results[1:], names[1:]):
        for section, key in COMPARABLE_KEYS:
            a, b = ((metric_key(ref), metric_key(res)) if key == 'metric_key' else
                    (ref[section].get(key), res[section].get(key)))
            if a != b:
                raise ValueError(f'{name} was evaluated with {section}.{key}={b!r}, but {ref_name} with {a!r}; '
                                 'only results on the same data set, class list and AP protocol can be compared')
        for key in GRID_KEYS if same_grid else ():
            if res['summary'][key] != ref['summary'][key]:
                raise ValueError(f'{name} covers {key}={res["summary"][key]}, but {ref_name} covers '
                                 f'{ref["summary"][key]}; their mPCs are not comparable')


def nan_to_none(obj):
    """JSON has no NaN: a class without ground truth (AP NaN) is stored as ``None``."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


def build_result(records: Dict[str, dict], corruptions: Sequence[str], severities: Sequence[int], model: dict,
                 dataset: dict, protocol: dict) -> dict:
    """A result from the per-set records (``'clean'`` and ``'<corruption>/<severity>'``, each with ``mAP`` and
    ``per_class``; ``mAP`` holds the primary key's value whatever the metric) and its metadata (``model``:
    label, checkpoint, weights_sha256; ``dataset``: see :data:`COMPARABLE_KEYS`; ``protocol``: metric,
    metric_key, metric_type, iou_thr, eval_mode, seed, cache). The summary names the key it was computed on."""
    clean = nan_to_none(records['clean'])
    corrupted = {c: {str(s): nan_to_none(records[f'{c}/{s}']) for s in severities} for c in corruptions}
    return dict(schema=RESULT_SCHEMA, model=model, dataset=dataset,
                protocol=dict(protocol, corruption=CORRUPTION_NOTE), clean=clean, corrupted=corrupted,
                summary=dict(summarize(clean, corrupted), metric_key=protocol.get('metric_key') or LEGACY_METRIC_KEY))


def load_result(path: str) -> dict:
    """A result JSON written by the robustness loop; a clear error for anything else."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'result file {path!r} does not exist')
    with open(path) as f:
        try:
            res = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not JSON ({e})') from e
    if not isinstance(res, dict) or res.get('schema') != RESULT_SCHEMA:
        schema = res.get('schema') if isinstance(res, dict) else None
        raise ValueError(f'{path}: not a robustness result (schema {schema!r}, '
                         f'expected {RESULT_SCHEMA!r}); produce one with tools/test_robustness.py')
    return res
