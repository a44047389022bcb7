"""Time a matrix's finished runs again, one at a time, on a machine that runs nothing else.

A matrix is usually shared by several processes (one per core), so each run's latency is timed while other runs
train beside it: the milliseconds are inflated and even the ratio to the interleaved dense model is noisy (on a
2-core CPU the batch-1 ratios of one configuration spread over +-0.1). ``remeasure_latency`` times the dense
start and every finished run whose model is still on disk (``pruned.pth``, or a control's last checkpoint) again,
with the matrix's latency protocol, and rewrites the records; the in-run numbers stay in each record as
``latency_in_run``. Runs whose model was deleted keep their in-run numbers and are named. The tables and plots
are rebuilt from the rewritten records, so a latency method is paired on the new numbers.
"""
import os.path as osp
from typing import Callable, List, Optional

from . import run as R
from .compare import model_cost, selected_runs, table_only
from .matrix import Matrix

LATENCY_KEYS = ('latency_ms', 'dense_latency_ms', 'latency_ratio')


def _model_path(rec: dict, work_dir: str) -> str:
    if rec.get('kind') == 'control':
        return osp.join(work_dir, rec['checkpoint'])
    return osp.join(work_dir, R.EXPORT_FILE)


def _retime(path: str, rec: dict, cost: dict) -> dict:
    kept = rec.get('latency_in_run') or {k: rec[k] for k in LATENCY_KEYS if k in rec}
    return R.write_record(path, dict(rec, **{k: cost[k] for k in LATENCY_KEYS}, latency_in_run=kept))


def remeasure_latency(matrix: Matrix, out_dir: str, split: str = 'test', methods: Optional[List[str]] = None,
                      ratios: Optional[List[float]] = None, log: Callable[[str], None] = print) -> dict:
    """Re-time the dense start and the finished runs of ``out_dir`` (a subset: ``methods`` / ``ratios``) and
    rebuild its tables; returns the paths of the tables and plots."""
    runs = selected_runs(matrix, split, methods, ratios)
    dense_path = osp.join(out_dir, 'dense', R.RECORD_FILE)
    dense = R.read_json(dense_path)
    if dense is None:
        raise FileNotFoundError(f'{out_dir} has no dense record (dense/{R.RECORD_FILE}); run the matrix first')
    if not osp.isfile(dense['checkpoint']):
        raise FileNotFoundError(f'{dense_path}: its dense checkpoint {dense["checkpoint"]!r} is not on disk')
    _retime(dense_path, dense, dict(model_cost(matrix, dense['checkpoint'], None, split), latency_ratio=1.0))
    missing = []
    for run in runs:
        path = osp.join(run.work_dir(out_dir), R.RECORD_FILE)
        rec = R.read_json(path)
        if rec is None:
            continue
        model = _model_path(rec, run.work_dir(out_dir))
        if not osp.isfile(model):
            missing.append(run.name)
            continue
        before = (rec.get('latency_in_run') or rec)['latency_ratio']
        rec = _retime(path, rec, model_cost(matrix, dense['checkpoint'], model, split,
                                            pruned=rec.get('kind') != 'control'))
        log(f'[remeasure] {run.name}: latency / dense {before:.3f} in the run, {rec["latency_ratio"]:.3f} now '
            f'({rec["latency_ms"]:.2f} ms)')
    if missing:
        log(f'[remeasure] kept the in-run latency of {len(missing)} run(s) whose model is not on disk: '
            + ', '.join(missing))
    return table_only(matrix, out_dir, split)
