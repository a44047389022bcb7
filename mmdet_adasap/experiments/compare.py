"""The method comparison: every (method, ratio, seed) of a matrix from one dense checkpoint, resumable.

``run_matrix`` checks the whole matrix first (methods, reachable ratios, the protocol of what ``OUT`` already
holds), makes sure of the dense start (given, or trained once per split), then works through the runs in
order: a run with a record is skipped, a run with checkpoints resumes, a new run trains through the Runner.
After every run ``OUT/results.{json,md}`` and the plots are rewritten, so that a matrix stopped at any
point leaves a consistent table of what has finished.
"""
import hashlib
import json
import os
import os.path as osp
import time
from functools import partial
from typing import Callable, List, Optional

from mmengine.hooks import Hook

from mmdet_adasap.apis import find_resize_shape, interleaved_latency, load_config, params_and_flops
from mmdet_adasap.pruning import ChannelPruner
from mmdet_adasap.pruning.latency_table import load_table
from mmdet_adasap.pruning.pruner import REACH_KEYS
from mmdet_adasap.utils.io import atomic_write_json
from . import run as R
from .matrix import Matrix, RunSpec, file_sha256
from .table import write_results

SEARCH_LOG = 'search_log.jsonl'


def _fmt_s(seconds: Optional[float]) -> str:
    if seconds is None:
        return '?'
    return f'{seconds / 60:.1f} min' if seconds >= 90 else f'{seconds:.0f} s'


class Progress:
    """Which run, which phase, and the ETA of the run and of the matrix (from the runs trained so far)."""

    def __init__(self, total: int, log: Callable[[str], None]):
        self.total, self.log, self.walls, self.todo = total, log, [], total
        self.index, self.name = 0, ''

    def start(self, index: int, name: str, phase: str) -> None:
        self.index, self.name = index, name
        self.log(f'[compare {index + 1}/{self.total}] {name}: {phase}')

    def finish(self, seconds: Optional[float], skipped: bool = False) -> None:
        """``seconds``: the run's wall time (a skipped run's recorded one also feeds the ETA)."""
        self.todo -= 1
        if seconds is not None:
            self.walls.append(seconds)
        if skipped:
            return
        eta = sum(self.walls) / len(self.walls) * self.todo if self.walls else None
        self.log(f'[compare {self.index + 1}/{self.total}] {self.name}: done in {_fmt_s(seconds)}; '
                 f'{self.todo} run(s) left, matrix ETA {_fmt_s(eta) if self.todo else "-"}')


class ProgressHook(Hook):
    """Logs the run, its AdaSAP phase and the run's ETA every ``interval`` iterations and at each phase change."""
    priority = 'LOWEST'

    def __init__(self, progress: Progress, interval: int = 50):
        self.progress, self.interval = progress, interval
        self._phase, self._t0, self._i0 = None, None, None

    def before_train(self, runner) -> None:
        self._t0, self._i0 = time.perf_counter(), runner.iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        phase = next((h.phase for h in runner.hooks if hasattr(h, 'phase_at')), None)
        it, total = runner.iter + 1, runner.max_iters  # iterations done
        if phase == self._phase and it % self.interval and it != total:
            return
        self._phase = phase
        rate = (time.perf_counter() - self._t0) / max(1, it - self._i0)
        p = self.progress
        p.log(f'[compare {p.index + 1}/{p.total}] {p.name}: phase {phase}, iter {it}/{total}, '
              f'run ETA {_fmt_s(rate * (total - it))}')


def check_methods(matrix: Matrix) -> None:
    """Every method's config takes a ratio at ``ratio_key`` and its pruner can reach the smallest ratio."""
    if not matrix.ratio_key.endswith('.target.ratio'):
        raise ValueError(f'ratio_key {matrix.ratio_key!r} must name a pruner target ratio (<...>.target.ratio)')
    checked = set()
    for m in matrix.methods.values():
        lowest = min(m.ratios or matrix.ratios)
        cfg = load_config(m.config, m.cfg_options)
        hook_keys = matrix.ratio_key.split('.')[:-3]  # <hook>.<pruning options>.target.ratio
        hook = _at(cfg.to_dict(), hook_keys)
        node = _at(hook, matrix.ratio_key.split('.')[len(hook_keys):-2])
        if not isinstance(node, dict) or not isinstance(node.get('target'), dict):
            raise ValueError(f'method {m.name!r}: its config {m.config} has no {matrix.ratio_key}, so a target '
                             'ratio cannot be set; is it a pruning (AdaSAPHook) config?')
        target = dict(node['target'], ratio=lowest)
        kwargs = {k: node[k] for k in REACH_KEYS if k in node}
        if target.get('type', 'flops') == 'latency':
            kwargs['latency_table'] = _latency_table(m, hook)
        key = json.dumps([cfg.model.to_dict(), target, kwargs], sort_keys=True, default=str)
        if key in checked:  # the same model and pruner settings: reachable as checked before
            continue
        checked.add(key)
        model = R.build_model(cfg)
        try:  # only the floor's cost decides reachability: any importance will do
            ChannelPruner(model, find_resize_shape(cfg) or (1, 3, 300, 300), target=target,
                          importance=dict(type='l2', normalize=None), **kwargs).prune_to(lowest)
        except ValueError as e:
            raise ValueError(f'method {m.name!r} cannot reach ratio {lowest:g} (run {m.name}/ratio{lowest:g}): '
                             f'{e}') from e


def _at(node, keys):
    """``node[k0][k1]...`` for the config-dict path ``keys``; None where the path breaks off."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _latency_table(method, hook) -> dict:
    """The table a latency-target method's hook will load (``latency_table`` beside its pruning options), loaded
    now so that a missing or foreign table stops the matrix before its first run, not hours into it."""
    path = hook.get('latency_table') if isinstance(hook, dict) else None
    if not path:
        raise ValueError(f'method {method.name!r}: its latency target needs latency_table=... beside its pruning '
                         f'options ({method.config})')
    try:
        return load_table(path)
    except FileNotFoundError as e:
        raise ValueError(f'method {method.name!r}: {e}') from e


def _transform_for(transform, run):
    return None if transform is None else partial(transform, run=run)


def dense_checkpoint_path(matrix: Matrix, out_dir: str, split: str) -> str:
    """The matrix's dense checkpoint, or the last epoch of the dense training the harness runs in ``OUT/dense``."""
    if matrix.dense_checkpoint:
        return matrix.dense_checkpoint
    cfg = load_config(matrix.dense_config, matrix.splits[split])
    return osp.join(out_dir, 'dense', f'epoch_{cfg.train_cfg.max_epochs}.pth')


def ensure_dense(matrix: Matrix, out_dir: str, split: str, transform=None, log=print) -> str:
    """The dense start: the matrix's checkpoint, or the last epoch of the dense config trained once into
    ``OUT/dense`` (resumed if interrupted); chosen without looking at any evaluation."""
    final = dense_checkpoint_path(matrix, out_dir, split)
    if matrix.dense_checkpoint:
        if not osp.isfile(final):
            raise FileNotFoundError(f'dense checkpoint {final!r} does not exist')
        return final
    work_dir = osp.join(out_dir, 'dense')
    if not osp.isfile(final):
        log(f'[compare] training the dense start {matrix.dense_config} on split {split!r} -> {work_dir}')
        seconds = R.train(matrix.dense_config, matrix.splits[split], work_dir, _transform_for(transform, None))
        log(f'[compare] dense start trained in {_fmt_s(seconds)}')
    return final


def _cost(matrix: Matrix, dense_ckpt: str, ckpt: Optional[str], split: str) -> dict:
    """Params, FLOPs and latency of the pruned ``ckpt`` next to the dense model (``ckpt=None``: the dense alone)."""
    opts, lat = matrix.eval_options(split), matrix.evaluation['latency']
    dense, shape = R.build_detector(matrix.dense_config, dense_ckpt, opts, pruned=False)
    d = params_and_flops(dense, shape)
    if ckpt is None:
        (ms,) = interleaved_latency([dense], shape, lat['repeats'], lat['threads'])
        return dict(d, latency_ms=ms, dense_latency_ms=ms, input=list(shape))
    model, _ = R.build_detector(matrix.pruned_config, ckpt, opts, pruned=True)
    d_ms, p_ms = interleaved_latency([dense, model], shape, lat['repeats'], lat['threads'])
    p = params_and_flops(model, shape)
    return dict(p, params_ratio=p['params'] / d['params'], flops_ratio=p['flops'] / d['flops'], latency_ms=p_ms,
                dense_latency_ms=d_ms, latency_ratio=p_ms / d_ms, input=list(shape))


def dense_record(matrix: Matrix, out_dir: str, split: str, dense_ckpt: str, protocol: dict, log=print) -> dict:
    work_dir = osp.join(out_dir, 'dense')
    path = osp.join(work_dir, R.RECORD_FILE)
    found = R.read_json(path)
    if found is not None:
        R.check_same(path, found['protocol'], protocol, 'dense record')
        return found
    log(f'[compare] evaluating the dense start {dense_ckpt}')
    t = time.perf_counter()
    result = R.evaluate(matrix.dense_config, dense_ckpt, work_dir, matrix.corruptions(),
                        matrix.evaluation['severities'], matrix.eval_options(split),
                        matrix.evaluation['cache_root'], 'dense')
    rec = dict(method='dense', label='dense', ratio=1.0, seed=None, split=split, checkpoint=dense_ckpt,
               protocol=protocol, params_ratio=1.0, flops_ratio=1.0, latency_ratio=1.0,
               **_cost(matrix, dense_ckpt, None, split), **R.scores(result),
               robustness='robustness/robustness.json', wall_s=dict(evaluate=time.perf_counter() - t))
    return R.write_record(path, rec)


def config_sha256(config: str, options: dict) -> str:
    """Fingerprint of the training config as the run sees it (its file and every ``_base_``, merged): editing a
    method's config after a run finished makes that run's record refused instead of silently reused."""
    cfg = load_config(config, options).to_dict()
    cfg.pop('work_dir', None)
    text = json.dumps(cfg, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def run_one(matrix: Matrix, run: RunSpec, out_dir: str, dense_ckpt: str, protocol: dict, progress: Progress,
            transform=None) -> dict:
    """Train (or resume), evaluate and record one run; a finished run is returned as recorded."""
    work_dir = run.work_dir(out_dir)
    method = matrix.methods[run.method]
    options = matrix.train_options(run, dense_ckpt)
    spec = dict(method=run.method, ratio=run.ratio, seed=run.seed, split=run.split, config=method.config,
                method_options=method.cfg_options, dense_sha256=protocol['dense_sha256'],
                config_sha256=config_sha256(method.config, options))
    rec_path, spec_path = osp.join(work_dir, R.RECORD_FILE), osp.join(work_dir, R.SPEC_FILE)
    found = R.read_json(rec_path)
    if found is not None:
        R.check_same(rec_path, {k: found.get(k) for k in spec}, spec, 'run')
        R.check_same(rec_path, found['protocol'], protocol, 'run')
        progress.start(progress.index, run.name, 'finished before, skipped')
        progress.finish(found['wall_s']['total'], skipped=True)
        return found
    old = R.read_json(spec_path)
    if old is not None:
        R.check_same(spec_path, old, spec, 'run')
    else:
        atomic_write_json(spec_path, spec)
    start = time.perf_counter()
    export = osp.join(work_dir, R.EXPORT_FILE)
    wall = {}
    resumed = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    if not osp.isfile(export):
        progress.start(progress.index, run.name, 'train (resuming)' if resumed else 'train')
        wall['train'] = R.train(method.config, options, work_dir,
                                _transform_for(transform, run), hooks=[ProgressHook(progress)])
        if not osp.isfile(export):
            raise RuntimeError(f'run {run.name}: training finished without exporting {export}; does the config '
                               'export the pruned model (AdaSAPHook export=...)?')
    progress.start(progress.index, run.name, 'evaluate (clean + corruptions, resumable)')
    t = time.perf_counter()
    result = R.evaluate(matrix.pruned_config, export, work_dir, matrix.corruptions(), matrix.evaluation['severities'],
                        matrix.eval_options(run.split), matrix.evaluation['cache_root'],
                        f'{method.label}, {run.ratio:g} FLOPs, seed {run.seed}')
    wall['evaluate'] = time.perf_counter() - t
    t = time.perf_counter()
    cost = _cost(matrix, dense_ckpt, export, run.split)
    wall['cost'] = time.perf_counter() - t
    wall['total'] = time.perf_counter() - start
    rec = dict(spec, label=method.label, protocol=protocol, resumed=resumed, **cost, **R.scores(result),
               robustness='robustness/robustness.json', wall_s=wall)
    R.write_record(rec_path, rec)
    progress.finish(wall['total'])
    if run.split != 'test':
        _log_search(out_dir, rec)
    return rec


def _log_search(out_dir: str, rec: dict) -> None:
    """One JSON line per finished search run: what was tried (config, overrides) and its val numbers."""
    keys = ('method', 'label', 'config', 'method_options', 'ratio', 'seed', 'split', 'clean_map', 'mpc', 'rpc',
            'mpc_unseen', 'flops_ratio')
    line = dict({k: rec.get(k) for k in keys}, time=time.strftime('%Y-%m-%dT%H:%M:%S'))
    with open(osp.join(out_dir, SEARCH_LOG), 'a') as f:
        f.write(json.dumps(line) + '\n')


def run_matrix(matrix: Matrix, out_dir: str, split: str = 'test', transform: Optional[Callable] = None,
               methods: Optional[List[str]] = None, log: Callable[[str], None] = print) -> dict:
    """Run (or continue) the matrix on ``split`` into ``out_dir``; returns the paths of the tables and plots.

    ``transform(cfg, run=RunSpec | None)``: a last edit of each training config (tests shrink the schedule).
    ``methods``: a subset of the method table (the others' finished runs still appear in the table).
    """
    if split not in matrix.splits:
        raise ValueError(f'split {split!r} is not one of the matrix splits {sorted(matrix.splits)}')
    unknown = sorted(set(methods or ()) - set(matrix.methods))
    if unknown:
        raise ValueError(f'method(s) {unknown} are not in the method table {list(matrix.methods)}')
    check_methods(matrix)
    os.makedirs(out_dir, exist_ok=True)
    dense_ckpt = ensure_dense(matrix, out_dir, split, transform, log)
    protocol = matrix.protocol(split, file_sha256(dense_ckpt))
    dense = dense_record(matrix, out_dir, split, dense_ckpt, protocol, log)
    runs = [r for r in matrix.runs(split) if not methods or r.method in methods]
    progress = Progress(len(runs), log)
    records = []
    for i, run in enumerate(runs):
        progress.index = i
        records.append(run_one(matrix, run, out_dir, dense_ckpt, protocol, progress, transform))
        paths = write_results(matrix, out_dir, split, dense)
    return paths if runs else write_results(matrix, out_dir, split, dense)


def table_only(matrix: Matrix, out_dir: str, split: str = 'test', methods=None) -> dict:
    """Rebuild the tables and plots of ``out_dir`` from its finished runs (no training, no evaluation)."""
    dense = R.read_json(osp.join(out_dir, 'dense', R.RECORD_FILE))
    if dense is None:
        raise FileNotFoundError(f'{out_dir} has no dense record (dense/{R.RECORD_FILE}); run the matrix first')
    if dense['split'] != split:
        raise ValueError(f'{out_dir} holds the {dense["split"]!r} split, not {split!r}')
    return write_results(matrix, out_dir, split, dense)
