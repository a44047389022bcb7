"""The method comparison: every (method, ratio, seed) of a matrix from one dense checkpoint, resumable.

``run_matrix`` checks the whole matrix first (methods, reachable ratios, the protocol of what ``OUT`` already
holds), makes sure of the dense start (given, or trained once per split), then works through the runs in
order: a run with a record is skipped, a run with checkpoints resumes, a new run trains through the Runner.
After every run ``OUT/results.{json,md}`` and the plots are rewritten, so that a matrix stopped at any
point leaves a consistent table of what has finished. Several processes may work on one ``OUT`` at once: each
claims a run before it starts it (``run.claim``) and passes over the runs another live process holds.
"""
import hashlib
import json
import os
import os.path as osp
import time
from functools import partial
from typing import Callable, List, Optional

import torch
from mmengine.hooks import Hook

from mmdet_adasap.apis import interleaved_latency, load_config, params_and_flops, trace_shape
from mmdet_adasap.pruning import ChannelPruner
from mmdet_adasap.pruning.latency_table import load_table
from mmdet_adasap.pruning.pruner import REACH_KEYS
from mmdet_adasap.utils.console import EchoHandler, console_to_file, echo
from mmdet_adasap.utils.io import atomic_write_json
from . import run as R
from .matrix import Matrix, RunSpec, _at, file_sha256
from .table import write_results

SEARCH_LOG = 'search_log.jsonl'
# the hooks' lines a user follows on the terminal too: the phase changes and the pruning steps
ECHOED = ('AdaSAPHook: phase', 'PruningHook: step', 'PruningHook: pruned physically', 'PruningHook: resumed')


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

    def finish(self, seconds: Optional[float], result: str = '', skipped: bool = False) -> None:
        """``seconds``: the run's wall time (a skipped run's recorded one also feeds the ETA); ``result``: its
        numbers, one line."""
        self.todo -= 1
        if seconds is not None:
            self.walls.append(seconds)
        if skipped:
            return
        eta = sum(self.walls) / len(self.walls) * self.todo if self.walls else None
        self.log(f'[compare {self.index + 1}/{self.total}] {self.name}: done in {_fmt_s(seconds)}'
                 + (f': {result}' if result else '')
                 + f'; {self.todo} run(s) left, matrix ETA {_fmt_s(eta) if self.todo else "-"}')


def result_line(rec: dict) -> str:
    """A record's numbers in one line: clean mAP, mPC, rPC and the cost ratios it has."""
    parts = [f'{k} {rec[k]:.1f}' for k in ('clean_map', 'mpc', 'rpc') if rec.get(k) is not None]
    parts += [f'{k} {rec[k]:.3f}' for k in ('flops_ratio', 'latency_ratio') if rec.get(k) is not None]
    return ', '.join(parts)


class ProgressHook(Hook):
    """Logs the run, its AdaSAP phase and the run's ETA every ``interval`` iterations and at each phase change."""
    priority = 'LOWEST'

    def __init__(self, progress: Progress, interval: int = 50):
        self.progress, self.interval = progress, interval
        self._phase, self._t0, self._i0 = None, None, None

    def before_train(self, runner) -> None:
        self._t0, self._i0 = time.perf_counter(), runner.iter
        p = self.progress
        self._echo = EchoHandler(ECHOED, lambda msg: f'[compare {p.index + 1}/{p.total}] {p.name}: {msg}')
        runner.logger.addHandler(self._echo)

    def after_train(self, runner) -> None:
        runner.logger.removeHandler(self._echo)

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
        if m.kind == 'control':  # nothing to reach: load_matrix made sure it names no target
            continue
        lowest = min(matrix.method_ratios(m))
        cfg = m.training_config(m.cfg_options)
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
            ChannelPruner(model, trace_shape(cfg), target=target,
                          importance=dict(type='l2', normalize=None), **kwargs).prune_to(lowest)
        except ValueError as e:
            raise ValueError(f'method {m.name!r} cannot reach ratio {lowest:g} (run {m.name}/ratio{lowest:g}): '
                             f'{e}') from e


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


def run_config_args(matrix: Matrix, run: RunSpec, options: dict, transform=None):
    """(the options to load the run's training config with, the transform that makes the loaded config the
    run's): its method's schedule / phases edit (:mod:`.arms`), then ``transform(cfg, run=run)``."""
    load, edit = matrix.methods[run.method].load_options(options)
    user = _transform_for(transform, run)
    if edit is None or user is None:
        return load, edit or user
    return load, lambda cfg: user(edit(cfg))


def dense_checkpoint_path(matrix: Matrix, out_dir: str, split: str) -> str:
    """The matrix's dense checkpoint, or the last epoch of the dense training the harness runs in ``OUT/dense``."""
    if matrix.dense_checkpoint:
        return matrix.dense_checkpoint
    cfg = load_config(matrix.dense_config, matrix.splits[split])
    return osp.join(out_dir, 'dense', f'epoch_{cfg.train_cfg.max_epochs}.pth')


def ensure_dense(matrix: Matrix, out_dir: str, split: str, transform=None, log=echo) -> str:
    """The dense start: the matrix's checkpoint, or the last epoch of the dense config trained once into
    ``OUT/dense`` (resumed if interrupted); chosen without looking at any evaluation."""
    final = dense_checkpoint_path(matrix, out_dir, split)
    if matrix.dense_checkpoint:
        if not osp.isfile(final):
            raise FileNotFoundError(f'dense checkpoint {final!r} does not exist')
        return final
    work_dir = osp.join(out_dir, 'dense')
    if not osp.isfile(final):
        log(f'[compare] training the dense start {matrix.dense_config} on split {split!r} -> {work_dir} '
            f'(its console output: {osp.join(work_dir, R.CONSOLE_LOG)})')
        os.makedirs(work_dir, exist_ok=True)
        with console_to_file(osp.join(work_dir, R.CONSOLE_LOG)):
            seconds = R.train(matrix.dense_config, matrix.splits[split], work_dir, _transform_for(transform, None))
        log(f'[compare] dense start trained in {_fmt_s(seconds)}')
    return final


def model_cost(matrix: Matrix, dense_ckpt: str, ckpt: Optional[str], split: str, pruned: bool = True) -> dict:
    """Params, FLOPs and latency of ``ckpt`` (pruned, or a dense-shaped control) next to the dense model
    (``ckpt=None``: the dense alone)."""
    opts, lat = matrix.eval_options(split), matrix.evaluation['latency']
    dense, shape = R.build_detector(matrix.dense_config, dense_ckpt, opts, pruned=False)
    d = params_and_flops(dense, shape)
    if ckpt is None:
        (ms,) = interleaved_latency([dense], shape, lat['repeats'], lat['threads'])
        return dict(d, latency_ms=ms, dense_latency_ms=ms, input=list(shape))
    config = matrix.pruned_config if pruned else matrix.dense_config
    model, _ = R.build_detector(config, ckpt, opts, pruned=pruned)
    d_ms, p_ms = interleaved_latency([dense, model], shape, lat['repeats'], lat['threads'])
    p = params_and_flops(model, shape)
    return dict(p, params_ratio=p['params'] / d['params'], flops_ratio=p['flops'] / d['flops'], latency_ms=p_ms,
                dense_latency_ms=d_ms, latency_ratio=p_ms / d_ms, input=list(shape))


def dense_record(matrix: Matrix, out_dir: str, split: str, dense_ckpt: str, protocol: dict, log=echo) -> dict:
    work_dir = osp.join(out_dir, 'dense')
    path = osp.join(work_dir, R.RECORD_FILE)
    found = R.read_json(path)
    if found is not None:
        R.check_protocol(path, found['protocol'], protocol, 'dense record')
        return found
    log(f'[compare] evaluating the dense start {dense_ckpt}')
    t = time.perf_counter()
    os.makedirs(work_dir, exist_ok=True)
    with console_to_file(osp.join(work_dir, R.CONSOLE_LOG)):
        result = R.evaluate(matrix.dense_config, dense_ckpt, work_dir, matrix.corruptions(),
                            matrix.evaluation['severities'], matrix.eval_options(split),
                            matrix.evaluation['cache_root'], 'dense', metric_key=matrix.evaluation['metric_key'])
        cost = model_cost(matrix, dense_ckpt, None, split)
    rec = dict(method='dense', label='dense', ratio=1.0, seed=None, split=split, checkpoint=dense_ckpt,
               protocol=protocol, params_ratio=1.0, flops_ratio=1.0, latency_ratio=1.0, **cost, **R.scores(result),
               robustness='robustness/robustness.json', wall_s=dict(evaluate=time.perf_counter() - t))
    log(f'[compare] dense: {result_line(rec)}')
    return R.write_record(path, rec)


def config_sha256(config: str, options: dict, edit: Optional[Callable] = None) -> str:
    """Fingerprint of the training config as the run sees it (its file and every ``_base_``, merged, and the
    method's ``edit``: its schedule / phases): editing a method's config after a run finished makes that run's
    record refused instead of silently reused."""
    cfg = load_config(config, options)
    cfg = (cfg if edit is None else edit(cfg)).to_dict()
    cfg.pop('work_dir', None)
    text = json.dumps(cfg, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def run_one(matrix: Matrix, run: RunSpec, out_dir: str, dense_ckpt: str, protocol: dict, progress: Progress,
            transform=None, processes: int = 1) -> Optional[dict]:
    """Train (or resume), evaluate and record one run; a finished run is returned as recorded (its end-of-pruning
    evaluation added if the matrix now asks for one); None: another live process holds the run. ``processes`` > 1:
    the training is one DDP training on that many processes (:func:`.run.train`); the rest runs here."""
    work_dir = run.work_dir(out_dir)
    options = matrix.train_options(run, dense_ckpt)
    spec = run_spec(matrix, run, options, protocol['dense_sha256'])
    rec_path = osp.join(work_dir, R.RECORD_FILE)
    found = R.read_json(rec_path)
    if found is not None:
        R.check_same(rec_path, {k: found.get(k) for k in spec}, spec, 'run')
        R.check_protocol(rec_path, found['protocol'], protocol, 'run')
        if not _wants_end_of_pruning(matrix, run, found):
            progress.start(progress.index, run.name, 'finished before, skipped')
            progress.finish(found['wall_s']['total'], skipped=True)
            return found
    if not R.claim(work_dir):
        progress.start(progress.index, run.name, 'held by another process, passed over')
        progress.finish(None, skipped=True)
        return None
    try:
        if found is None and R.read_json(rec_path) is not None:  # finished by another process meanwhile
            return run_one(matrix, run, out_dir, dense_ckpt, protocol, progress, transform, processes)
        with console_to_file(osp.join(work_dir, R.CONSOLE_LOG)):  # the terminal shows the progress lines only
            if found is not None:
                return _add_end_of_pruning(matrix, run, out_dir, dense_ckpt, found, options, progress, transform)
            return _train_and_evaluate(matrix, run, out_dir, dense_ckpt, protocol, progress, transform, spec,
                                       options, processes)
    finally:
        R.release(work_dir)


def run_spec(matrix: Matrix, run: RunSpec, options: dict, dense_sha256: str) -> dict:
    """What a run is (``run.json``, and the fields its record must still match on resume): with the method's
    ``schedule`` / ``phases`` when it has them, and the fingerprint of its training config as edited by them."""
    method = matrix.methods[run.method]
    load, edit = method.load_options(options)
    return dict(method=run.method, ratio=run.ratio, seed=run.seed, split=run.split, config=method.config,
                method_options=method.cfg_options, dense_sha256=dense_sha256,
                config_sha256=config_sha256(method.config, load, edit), **method.arm())


def _train_and_evaluate(matrix, run, out_dir, dense_ckpt, protocol, progress, transform, spec, options,
                        processes=1) -> dict:
    work_dir = run.work_dir(out_dir)
    method = matrix.methods[run.method]
    rec_path, spec_path = osp.join(work_dir, R.RECORD_FILE), osp.join(work_dir, R.SPEC_FILE)
    old = R.read_json(spec_path)
    if old is not None:
        R.check_same(spec_path, old, spec, 'run')
    else:
        atomic_write_json(spec_path, spec)
    start = time.perf_counter()
    export = osp.join(work_dir, R.EXPORT_FILE)
    control = method.kind == 'control'
    wall = {}
    resumed = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    if control or not osp.isfile(export):  # a finished control's training resumes at its end: a no-op
        progress.start(progress.index, run.name, 'train (resuming)' if resumed else 'train')
        load, edit = run_config_args(matrix, run, options, transform)
        wall['train'] = R.train(method.config, load, work_dir, edit, [ProgressHook(progress)], processes)
        if control:
            export = R.last_checkpoint(work_dir)
        elif not osp.isfile(export):
            raise RuntimeError(f'run {run.name}: training finished without exporting {export}; does the config '
                               'export the pruned model (AdaSAPHook export=...)?')
    progress.start(progress.index, run.name, 'evaluate (clean + corruptions, resumable)')
    t = time.perf_counter()
    what = 'no pruning' if control else f'{run.ratio:g} {method.kind}'
    result = R.evaluate(matrix.dense_config if control else matrix.pruned_config, export, work_dir,
                        matrix.corruptions(), matrix.evaluation['severities'], matrix.eval_options(run.split),
                        matrix.evaluation['cache_root'], f'{method.label}, {what}, seed {run.seed}',
                        metric_key=matrix.evaluation['metric_key'])
    wall['evaluate'] = time.perf_counter() - t
    t = time.perf_counter()
    cost = model_cost(matrix, dense_ckpt, export, run.split, pruned=not control)
    wall['cost'] = time.perf_counter() - t
    wall['total'] = time.perf_counter() - start
    rec = dict(spec, label=method.label, kind=method.kind, protocol=protocol, resumed=resumed, **cost,
               **R.scores(result), robustness='robustness/robustness.json', wall_s=wall)
    if control:
        rec['checkpoint'] = osp.relpath(export, work_dir)
    if 'train' in wall and processes > 1:
        rec['train_processes'] = processes  # a larger total batch than the 1-process runs of the table
    if _wants_end_of_pruning(matrix, run, rec):
        rec['end_of_pruning'] = _end_of_pruning(matrix, run, out_dir, dense_ckpt, options, progress, transform)
    R.write_record(rec_path, rec)
    progress.finish(wall['total'], result_line(rec))
    if run.split != 'test':
        _log_search(out_dir, rec)
    return rec


def _wants_end_of_pruning(matrix: Matrix, run: RunSpec, rec: dict) -> bool:
    return run.ratio in matrix.methods[run.method].end_of_pruning and 'end_of_pruning' not in rec


def _add_end_of_pruning(matrix, run, out_dir, dense_ckpt, rec, options, progress, transform) -> dict:
    """A finished run's record with the end-of-pruning evaluation the matrix now asks for."""
    rec = dict(rec, end_of_pruning=_end_of_pruning(matrix, run, out_dir, dense_ckpt, options, progress, transform))
    return R.write_record(osp.join(run.work_dir(out_dir), R.RECORD_FILE), rec)


def end_of_pruning_checkpoint(matrix: Matrix, run: RunSpec, out_dir: str, options: dict, transform=None) -> str:
    """The checkpoint the run saved when its pruning phase ended (after that phase's last iteration), checked
    against the phase end its config gives. A hook counting in iterations whose pruning phase ends on an epoch's
    last iteration has that state in the epoch's checkpoint (RTMDet's recipes: iteration 150 = epoch 1)."""
    load, edit = run_config_args(matrix, run, options, transform)
    cfg = R.run_config(matrix.methods[run.method].config, load, run.work_dir(out_dir), edit)
    hook = _at(cfg.to_dict(), matrix.ratio_key.split('.')[:-3])
    end, by_epoch = hook['pruning']['end'], hook.get('by_epoch', True)
    unit = 'epoch' if by_epoch else 'iter'
    path = osp.join(run.work_dir(out_dir), f'{unit}_{end}.pth')
    if osp.isfile(path):
        saved_at = _checkpoint_meta(path).get(unit)
        if saved_at != end:
            raise ValueError(f'run {run.name}: {path} was saved at {unit} {saved_at!r}, not at the end of the '
                             f'pruning phase ({unit} {end})')
        return path
    found = None if by_epoch else _epoch_checkpoint_at_iter(run.work_dir(out_dir), end)
    if found is None:
        raise FileNotFoundError(
            f'run {run.name}: the end-of-pruning evaluation needs the checkpoint of the pruning phase\'s last '
            f'iteration, {path}, which the run did not keep; keep every checkpoint (method cfg_options '
            f'{{"default_hooks.checkpoint.max_keep_ckpts": -1}}, saved every {unit}) and run it again')
    return found


def _checkpoint_meta(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False).get('meta', {})


def _epoch_checkpoint_at_iter(work_dir: str, iteration: int) -> Optional[str]:
    """The epoch checkpoint of ``work_dir`` saved after training iteration ``iteration``, if there is one."""
    for name in sorted(os.listdir(work_dir)):
        if name.startswith('epoch_') and name.endswith('.pth'):
            path = osp.join(work_dir, name)
            if _checkpoint_meta(path).get('iter') == iteration:
                return path
    return None


def _end_of_pruning(matrix, run, out_dir, dense_ckpt, options, progress, transform) -> dict:
    """Clean + corrupted scores and cost of the model as its pruning phase left it, before any fine-tune."""
    work_dir = run.work_dir(out_dir)
    path = end_of_pruning_checkpoint(matrix, run, out_dir, options, transform)
    progress.start(progress.index, run.name, f'evaluate the end of pruning ({osp.basename(path)})')
    t = time.perf_counter()
    result = R.evaluate(matrix.pruned_config, path, work_dir, matrix.corruptions(),
                        matrix.evaluation['severities'], matrix.eval_options(run.split),
                        matrix.evaluation['cache_root'], f'{matrix.methods[run.method].label}, end of pruning, '
                        f'seed {run.seed}', folder=R.END_OF_PRUNING_DIR,
                        metric_key=matrix.evaluation['metric_key'])
    seconds = time.perf_counter() - t
    cost = {k: v for k, v in model_cost(matrix, dense_ckpt, path, run.split).items()
            if k in ('params_ratio', 'flops_ratio', 'latency_ratio')}
    return dict(checkpoint=osp.relpath(path, work_dir), **cost, **R.scores(result),
                robustness=f'{R.END_OF_PRUNING_DIR}/robustness.json', wall_s=dict(evaluate=seconds))


def _log_search(out_dir: str, rec: dict) -> None:
    """One JSON line per finished search run: what was tried (config, overrides) and its val numbers."""
    keys = ('method', 'label', 'config', 'method_options', 'ratio', 'seed', 'split', 'clean_map', 'mpc', 'rpc',
            'mpc_unseen', 'flops_ratio')
    line = dict({k: rec.get(k) for k in keys}, **{k: rec[k] for k in ('schedule', 'phases') if k in rec},
                time=time.strftime('%Y-%m-%dT%H:%M:%S'))
    with open(osp.join(out_dir, SEARCH_LOG), 'a') as f:
        f.write(json.dumps(line) + '\n')


def selected_runs(matrix: Matrix, split: str, methods: Optional[List[str]] = None,
                  ratios: Optional[List[float]] = None) -> List[RunSpec]:
    """The runs of ``split``, or of a subset of the method table / of the runs' ratios, each checked."""
    if split not in matrix.splits:
        raise ValueError(f'split {split!r} is not one of the matrix splits {sorted(matrix.splits)}')
    unknown = sorted(set(methods or ()) - set(matrix.methods))
    if unknown:
        raise ValueError(f'method(s) {unknown} are not in the method table {list(matrix.methods)}')
    all_ratios = {r.ratio for r in matrix.runs(split)}
    if ratios is not None and not set(ratios) <= all_ratios:
        raise ValueError(f'ratio(s) {sorted(set(ratios) - all_ratios)} are not among the runs\' ratios '
                         f'{sorted(all_ratios)} (1.0: the controls)')
    return [r for r in matrix.runs(split) if (not methods or r.method in methods)
            and (ratios is None or r.ratio in ratios)]


def run_matrix(matrix: Matrix, out_dir: str, split: str = 'test', transform: Optional[Callable] = None,
               methods: Optional[List[str]] = None, log: Callable[[str], None] = echo,
               ratios: Optional[List[float]] = None, processes: int = 1) -> dict:
    """Run (or continue) the matrix on ``split`` into ``out_dir``; returns the paths of the tables and plots.

    ``transform(cfg, run=RunSpec | None)``: a last edit of each training config (tests shrink the schedule).
    ``methods`` / ``ratios``: a subset of the method table / of the runs' ratios (1.0: the controls); the other
    finished runs still appear in the table. ``processes``: of each run's training (one per GPU: a DDP training).
    """
    runs = selected_runs(matrix, split, methods, ratios)
    check_methods(matrix)
    os.makedirs(out_dir, exist_ok=True)
    dense_ckpt = ensure_dense(matrix, out_dir, split, transform, log)
    protocol = matrix.protocol(split, file_sha256(dense_ckpt))
    dense = dense_record(matrix, out_dir, split, dense_ckpt, protocol, log)
    progress = Progress(len(runs), log)
    for i, run in enumerate(runs):
        progress.index = i
        run_one(matrix, run, out_dir, dense_ckpt, protocol, progress, transform, processes)
        write_results(matrix, out_dir, split, dense)
    return write_results(matrix, out_dir, split, dense)


def table_only(matrix: Matrix, out_dir: str, split: str = 'test') -> dict:
    """Rebuild the tables and plots of ``out_dir`` from its finished runs (no training, no evaluation)."""
    dense = R.read_json(osp.join(out_dir, 'dense', R.RECORD_FILE))
    if dense is None:
        raise FileNotFoundError(f'{out_dir} has no dense record (dense/{R.RECORD_FILE}); run the matrix first')
    if dense['split'] != split:
        raise ValueError(f'{out_dir} holds the {dense["split"]!r} split, not {split!r}')
    return write_results(matrix, out_dir, split, dense)
