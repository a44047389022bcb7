"""The comparison matrix: which methods, target ratios, seeds and evaluation protocol, read from one mm config.

A matrix config (``configs/compare/*_matrix.py``) names one dense config and checkpoint, a method table
(``name -> dict(config=..., label=..., cfg_options=...)``), the ``ratio_key`` through which a ratio reaches a
method's config, the ratios, the seeds per split, the split overrides and the evaluation protocol. Everything
is checked before the first run starts, so that a typo costs seconds, not an hour of training.
"""
import copy
import hashlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.config import Config

from mmdet_adasap.pruning.targets import check_ratio
from mmdet_adasap.robustness.corruptions import check_severities, resolve_corruptions

MATRIX_KEYS = ('dense', 'pruned_config', 'methods', 'reference', 'ratio_key', 'ratios', 'seeds', 'splits',
               'evaluation')
EVAL_DEFAULTS = dict(corruptions='benchmark', unseen='holdout', severities=[1, 3, 5], cache_root=None,
                     latency=dict(repeats=30, threads=1), cfg_options={}, category_ratio=None)


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
    ratios: Optional[List[float]] = None  # a subset of the matrix's ratios (None: all of them)


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

    def runs(self, split: str) -> List[RunSpec]:
        """Ratio-major order: a matrix stopped half-way has every method at the first ratios."""
        return [RunSpec(m, r, s, split) for r in self.ratios for s in self.seeds[split]
                for m, method in self.methods.items() if method.ratios is None or r in method.ratios]

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
                    latency=ev['latency'], ratio_key=self.ratio_key)

    def train_options(self, run: RunSpec, dense_checkpoint: str) -> dict:
        m = self.methods[run.method]
        return {**self.splits[run.split], **m.cfg_options, self.ratio_key: run.ratio,
                'randomness': dict(seed=run.seed), 'load_from': dense_checkpoint}

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


def _methods(table, source: str, ratios: List[float]) -> Dict[str, Method]:
    if not isinstance(table, dict) or not table:
        raise ValueError(f'matrix {source}: methods must be a non-empty dict name -> dict(config=...)')
    out = {}
    for name, spec in table.items():
        if not isinstance(spec, dict) or not spec.get('config'):
            raise ValueError(f'matrix {source}: method {name!r} has no config; give '
                             f'methods.{name}=dict(config=\'configs/...py\', label=...)')
        unknown = set(spec) - {'config', 'label', 'cfg_options', 'ratios'}
        if unknown:
            raise ValueError(f'matrix {source}: method {name!r} has unknown key(s) {sorted(unknown)}')
        config = _resolve(spec['config'], source)
        if not osp.isfile(config):
            raise ValueError(f'matrix {source}: the config {spec["config"]!r} of method {name!r} does not exist')
        if '/' in name or not name:
            raise ValueError(f'matrix {source}: method name {name!r} must be non-empty and have no "/"')
        own = spec.get('ratios')
        if own is not None:
            own = _number_list(own, f'methods.{name}.ratios', float)
            if not set(own) <= set(ratios):
                raise ValueError(f'matrix {source}: method {name!r} asks for ratio(s) {sorted(set(own) - set(ratios))} '
                                 f'that are not in the matrix ratios {ratios}')
        out[name] = Method(name, config, spec.get('label', name), dict(spec.get('cfg_options') or {}), own)
    return out


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
    for r in ratios:
        check_ratio(r, f'matrix {path}: ratio')
    methods = _methods(d['methods'], path, ratios)
    if d['reference'] not in methods:
        raise ValueError(f'matrix {path}: reference {d["reference"]!r} is not one of the methods {list(methods)}')
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
    ev['category_ratio'] = float(ev['category_ratio'] if ev['category_ratio'] is not None else ratios[0])
    dense = d['dense']
    pruned = _resolve(d['pruned_config'], path)
    for what, p in (('dense.config', _resolve(dense.get('config', ''), path)), ('pruned_config', pruned)):
        if not osp.isfile(p):
            raise ValueError(f'matrix {path}: {what} {p!r} does not exist')
    return Matrix(path, _resolve(dense['config'], path), dense.get('checkpoint'), pruned, methods, d['reference'],
                  d['ratio_key'], ratios, seeds, splits, ev)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
