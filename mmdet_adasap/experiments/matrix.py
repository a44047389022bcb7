"""The comparison matrix: which methods, target ratios, seeds and evaluation protocol, read from one mm config.

A matrix config (``configs/compare/*_matrix.py``) names one dense config and checkpoint, a method table
(``name -> dict(config=..., label=..., cfg_options=...)``), the ``ratio_key`` through which a ratio reaches a
method's config, the ratios, the seeds per split, the split overrides and the evaluation protocol. Everything
is checked before the first run starts, so that a typo costs seconds, not an hour of training.

A method is of one of three kinds, and each kind is tabled apart, paired with its own reference:
- ``flops``: its config prunes to a FLOPs target; it runs at the matrix ``ratios`` (or its own subset);
- ``latency``: its config prunes to a latency target; it runs at its own ``ratios`` (fractions of the dense
  latency), and pairs only with runs whose measured latency matches (``evaluation.latency_match``);
- ``control`` (``control=True``): no pruning at all, the dense start trained on with the method's config; its
  runs have ratio 1.0 and it may name no pruning target.
``end_of_pruning=[ratios]`` also evaluates a pruning method's model as it stands when its pruning phase ends
(the checkpoint of that phase's last iteration), before the fine-tune.
``schedule=k`` or ``schedule=dict(warmup=W, pruning=P, finetune=F)`` lengthens a method's AdaSAP schedule, and
``phases=dict(warmup=..., finetune=...)`` makes it an ablation arm (:mod:`.arms`); both edit the method's config
when a run is built and are recorded in its run record.
"""
import copy
import hashlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

from mmengine.config import Config

from mmdet_adasap.pruning.targets import check_ratio
from mmdet_adasap.robustness.corruptions import check_severities, resolve_corruptions
from mmdet_adasap.robustness.loop import primary_metric
from .arms import arm_edit, arm_record, check_phases, check_schedule, load_arm_config

MATRIX_KEYS = ('dense', 'pruned_config', 'methods', 'reference', 'ratio_key', 'ratios', 'seeds', 'splits',
               'evaluation')
EVAL_DEFAULTS = dict(corruptions='benchmark', unseen='holdout', severities=[1, 3, 5], cache_root=None,
                     latency=dict(repeats=30, threads=1), cfg_options={}, category_ratio=None, latency_match=0.1,
                     metric_key=None)
METHOD_KEYS = ('config', 'label', 'cfg_options', 'ratios', 'control', 'end_of_pruning', 'schedule', 'phases')
KINDS = ('flops', 'latency', 'control')


@dataclass(frozen=True)
class RunSpec:
    """One cell of the matrix: a method at a target ratio with a seed, on a split."""
    method: str
    ratio: float
    seed: int
    split: str

    @property
    def name(self) -> str:
        return f'{self.method}/ratio{self.ratio:g}/seed{self.seed}'

    def work_dir(self, out_dir: str) -> str:
        return osp.join(out_dir, 'runs', self.method, f'ratio{self.ratio:g}', f'seed{self.seed}')


@dataclass
class Method:
    name: str
    config: str
    label: str
    cfg_options: dict = field(default_factory=dict)
    ratios: Optional[List[float]] = None  # a subset of the matrix's ratios (None: all of them); latency: its own
    kind: str = 'flops'  # 'flops' | 'latency' (the target type of its config) | 'control' (no pruning)
    end_of_pruning: List[float] = field(default_factory=list)  # ratios whose runs are also evaluated there
    schedule: Union[int, dict] = 1  # a multiplier of every phase length, or dict(warmup=, pruning=, finetune=)
    phases: Optional[dict] = None  # dict(warmup=..., finetune=...): an ablation arm (None: the config's own)

    def arm(self) -> dict:
        """What its run records carry of ``schedule`` / ``phases`` (only what differs from the config's own)."""
        return arm_record(self.schedule, self.phases)

    def load_options(self, options: dict) -> Tuple[dict, Optional[Callable]]:
        """The options to load its config with, and the edit that makes the loaded config this method's (None:
        none): ``cfg = edit(load_config(config, options))``."""
        return arm_edit(self.config, options, self.schedule, self.phases)

    def training_config(self, options: dict, work_dir: Optional[str] = None):
        """Its training config with ``options`` (split, cfg_options, ratio, seed), its schedule and phases."""
        return load_arm_config(self.config, options, self.schedule, self.phases, work_dir)


@dataclass
class Matrix:
    source: str
    dense_config: str
    dense_checkpoint: Optional[str]
    pruned_config: str
    methods: Dict[str, Method]
    reference: str
    ratio_key: str
    ratios: List[float]
    seeds: Dict[str, List[int]]
    splits: Dict[str, dict]
    evaluation: dict
    references: Dict[str, str] = field(default_factory=dict)  # kind -> the method the others are paired with

    def method_ratios(self, method: Method) -> List[float]:
        if method.kind == 'control':
            return [1.0]
        return method.ratios if method.ratios is not None else self.ratios

    def runs(self, split: str) -> List[RunSpec]:
        """FLOPs runs ratio-major (a matrix stopped half-way has every method at the first ratios), then the
        controls, then the latency-target runs."""
        out = []
        for kind in KINDS:
            ratios = self.ratios if kind == 'flops' else sorted({r for m in self.methods.values() if m.kind == kind
                                                                 for r in self.method_ratios(m)}, reverse=True)
            out += [RunSpec(m, r, s, split) for r in ratios for s in self.seeds[split]
                    for m, method in self.methods.items() if method.kind == kind and r in self.method_ratios(method)]
        return out

    def corruptions(self) -> List[str]:
        bench = resolve_corruptions(self.evaluation['corruptions'])
        unseen = resolve_corruptions(self.evaluation['unseen']) if self.evaluation['unseen'] else []
        return bench + [c for c in unseen if c not in bench]

    def protocol(self, split: str, dense_sha256: str) -> dict:
        """What every run of one table must share (compared field by field on resume and when tabulating)."""
        ev = self.evaluation
        return dict(split=split, split_options=self.splits[split], dense_sha256=dense_sha256,
                    corruptions=resolve_corruptions(ev['corruptions']),
                    unseen=resolve_corruptions(ev['unseen']) if ev['unseen'] else [],
                    severities=list(ev['severities']), eval_cfg_options=ev['cfg_options'],
                    latency=ev['latency'], ratio_key=self.ratio_key, metric_key=ev['metric_key'])

    def train_options(self, run: RunSpec, dense_checkpoint: str) -> dict:
        m = self.methods[run.method]
        target = {} if m.kind == 'control' else {self.ratio_key: run.ratio}
        return {**self.splits[run.split], **m.cfg_options, **target,
                'randomness': dict(seed=run.seed), 'load_from': dense_checkpoint}

    def method_config(self, name: str, options: Optional[dict] = None, work_dir: Optional[str] = None):
        """Method ``name``'s training config with ``options`` (default: its cfg_options), schedule and phases."""
        m = self.methods[name]
        return m.training_config(m.cfg_options if options is None else options, work_dir)

    def eval_options(self, split: str) -> dict:
        return {**self.splits[split], **self.evaluation['cfg_options']}


def _resolve(path: str, base: str) -> str:
    """Config paths are relative to the working directory (as the tools take them), else to the matrix file."""
    if osp.isabs(path) or osp.exists(path):
        return path
    alt = osp.join(osp.dirname(base), path)
    return alt if osp.exists(alt) else path


def _number_list(values, what: str, cast) -> list:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f'matrix: {what} must be a non-empty list, got {values!r}')
    out = [cast(v) for v in values]
    if len(set(out)) != len(out):
        raise ValueError(f'matrix: {what} {out} repeats a value')
    return out


def _methods(table, source: str, ratios: List[float], ratio_key: str) -> Dict[str, Method]:
    if not isinstance(table, dict) or not table:
        raise ValueError(f'matrix {source}: methods must be a non-empty dict name -> dict(config=...)')
    out = {}
    for name, spec in table.items():
        if not isinstance(spec, dict) or not spec.get('config'):
            raise ValueError(f'matrix {source}: method {name!r} has no config; give '
                             f'methods.{name}=dict(config=\'configs/...py\', label=...)')
        unknown = set(spec) - set(METHOD_KEYS)
        if unknown:
            raise ValueError(f'matrix {source}: method {name!r} has unknown key(s) {sorted(unknown)}; '
                             f'known: {METHOD_KEYS}')
        config = _resolve(spec['config'], source)
        if not osp.isfile(config):
            raise ValueError(f'matrix {source}: the config {spec["config"]!r} of method {name!r} does not exist')
        if '/' in name or not name:
            raise ValueError(f'matrix {source}: method name {name!r} must be non-empty and have no "/"')
        options = dict(spec.get('cfg_options') or {})
        where = f'matrix {source}: method {name!r}'
        schedule, phases = check_schedule(spec.get('schedule'), where), check_phases(spec.get('phases'), where)
        try:  # with its schedule and phases: a config they cannot edit is refused now, naming it
            cfg = load_arm_config(config, options, schedule, phases)
        except ValueError as e:
            raise ValueError(f'{where}: {e}') from e
        kind = _kind(name, spec, config, cfg, ratio_key, source)
        own = spec.get('ratios')
        if own is not None:
            own = _number_list(own, f'methods.{name}.ratios', float)
            if kind == 'flops' and not set(own) <= set(ratios):
                raise ValueError(f'matrix {source}: method {name!r} asks for ratio(s) {sorted(set(own) - set(ratios))} '
                                 f'that are not in the matrix ratios {ratios}')
            _check_fractions(own, f'method {name!r}: ratio', source)
        elif kind == 'latency':
            raise ValueError(f'matrix {source}: method {name!r} prunes to a latency target; give its own '
                             f'ratios=[...] (fractions of the dense latency), e.g. the measured latency of the '
                             'FLOPs runs it is to be compared at')
        end = _number_list(spec['end_of_pruning'], f'methods.{name}.end_of_pruning', float) \
            if spec.get('end_of_pruning') else []
        if end and kind == 'control':
            raise ValueError(f'matrix {source}: method {name!r} is a control (no pruning phase), so it has no end '
                             f'of pruning to evaluate; remove its end_of_pruning={spec["end_of_pruning"]!r}')
        missing = sorted(set(end) - set(own if own is not None else ratios))
        if missing:
            raise ValueError(f'matrix {source}: method {name!r} asks for an end-of-pruning evaluation at ratio(s) '
                             f'{missing} it does not run at')
        out[name] = Method(name, config, spec.get('label', name), options, own, kind, end, schedule, phases)
    return out


def _kind(name: str, spec: dict, config: str, cfg, ratio_key: str, source: str) -> str:
    """'control' (declared; its config must name no pruning target), else the target type of its config."""
    hook = cfg.to_dict()
    node = _at(hook, ratio_key.split('.')[:-2])  # <hook>.<pruning options>
    target = node.get('target') if isinstance(node, dict) else None
    if spec.get('control'):
        if 'ratios' in spec:
            raise ValueError(f'matrix {source}: method {name!r} is a control: it runs at ratio 1.0 only; remove '
                             f'its ratios={spec["ratios"]!r}')
        if target is not None:
            raise ValueError(f'matrix {source}: method {name!r} is a control (no pruning), but its config {config} '
                             f'names a pruning target at {".".join(ratio_key.split(".")[:-1])} = {target!r}; give '
                             'a control a training config without a pruning hook')
        return 'control'
    return target.get('type', 'flops') if isinstance(target, dict) else 'flops'


def _at(node, keys):
    """``node[k0][k1]...`` for the config-dict path ``keys``; None where the path breaks off."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _check_fractions(values: List[float], what: str, source: str) -> None:
    for r in values:
        check_ratio(r, f'matrix {source}: {what}')


def _references(ref, methods: Dict[str, Method], source: str) -> Dict[str, str]:
    """``reference``: a method name (the FLOPs methods' reference) or dict(kind=name); each kind that has more
    than one method and no reference of its own is paired with nothing."""
    refs = {'flops': ref} if isinstance(ref, str) else dict(ref or {})
    for kind, name in refs.items():
        if kind not in KINDS:
            raise ValueError(f'matrix {source}: reference kind {kind!r} is not one of {KINDS}')
        if name not in methods:
            raise ValueError(f'matrix {source}: reference {name!r} is not one of the methods {list(methods)}')
        if methods[name].kind != kind:
            raise ValueError(f'matrix {source}: reference {name!r} for the {kind} methods is a {methods[name].kind} '
                             'method')
    return refs


def load_matrix(path: str, overrides: Optional[dict] = None) -> Matrix:
    """Read and check a matrix config; ``overrides`` (``--cfg-options``) are merged first."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'matrix config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if overrides:
        cfg.merge_from_dict(overrides)
    d = {k: copy.deepcopy(v) for k, v in cfg.to_dict().items() if not k.startswith('_')}
    unknown, missing = set(d) - set(MATRIX_KEYS), [k for k in MATRIX_KEYS if k not in d]
    if unknown or missing:
        raise ValueError(f'matrix {path}: unknown key(s) {sorted(unknown)}, missing key(s) {missing}; '
                         f'a matrix config has {MATRIX_KEYS}')
    ratios = _number_list(d['ratios'], 'ratios', float)
    _check_fractions(ratios, 'ratio', path)
    methods = _methods(d['methods'], path, ratios, d['ratio_key'])
    references = _references(d['reference'], methods, path)
    splits = d['splits']
    if not isinstance(splits, dict) or not isinstance(d['seeds'], dict) or set(d['seeds']) != set(splits):
        raise ValueError(f'matrix {path}: seeds must be a dict split -> list of seeds with the splits of '
                         f'`splits` ({sorted(splits)}), got {d["seeds"]!r}')
    seeds = {k: _number_list(v, f'seeds.{k}', int) for k, v in d['seeds'].items()}
    ev = {**EVAL_DEFAULTS, **d['evaluation']}
    unknown = set(ev) - set(EVAL_DEFAULTS)
    if unknown:
        raise ValueError(f'matrix {path}: unknown evaluation key(s) {sorted(unknown)}; known: {list(EVAL_DEFAULTS)}')
    resolve_corruptions(ev['corruptions']), check_severities(ev['severities'])  # fail now, naming the value
    if ev['unseen']:
        resolve_corruptions(ev['unseen'])
    tol = ev['latency_match']
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f'matrix {path}: evaluation.latency_match must be a relative tolerance in (0, 1), got {tol!r}')
    ev['category_ratio'] = float(ev['category_ratio'] if ev['category_ratio'] is not None else ratios[0])
    dense = d['dense']
    pruned = _resolve(d['pruned_config'], path)
    for what, p in (('dense.config', _resolve(dense.get('config', ''), path)), ('pruned_config', pruned)):
        if not osp.isfile(p):
            raise ValueError(f'matrix {path}: {what} {p!r} does not exist')
    ev['metric_key'] = _metric_key(ev, _resolve(dense['config'], path), pruned, path)
    return Matrix(path, _resolve(dense['config'], path), dense.get('checkpoint'), pruned, methods,
                  references.get('flops'), d['ratio_key'], ratios, seeds, splits, ev, references)


def _metric_key(ev: dict, dense_config: str, pruned_config: str, source: str) -> str:
    """The key the table's clean mAP / mPC / rPC are computed on: ``evaluation.metric_key``, else the default of
    the dense config's test_evaluator, as the robustness loop picks it (``pascal_voc/mAP``, ``coco/bbox_mAP``).
    The dense and the pruned config must evaluate with the same metric; a key the metric does not return is
    refused now, before anything is trained or evaluated."""
    found = {}
    for what, config in (('dense.config', dense_config), ('pruned_config', pruned_config)):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(ev['cfg_options'])
        try:
            found[what] = primary_metric(cfg.get('test_evaluator'), ev['metric_key'])
        except ValueError as e:
            raise ValueError(f'matrix {source}: {what} {config}: {e}') from e
    if found['dense.config'] != found['pruned_config']:
        raise ValueError(f'matrix {source}: the dense config evaluates {found["dense.config"]} and the pruned config '
                         f'{found["pruned_config"]} (metric type, key); give pruned_config the dense config\'s '
                         'test_evaluator (a pruned config is the dense config with the PrunedDetector lines)')
    return found['dense.config'][1]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
