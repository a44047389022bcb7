"""The demo: one seed of the method comparison, run by the harness, with a short printed summary.

``run_demo`` builds what the matrix needs first (the synthetic data, the latency table of its latency-target
methods, each timed), then hands the matrix to :func:`~.compare.run_matrix`, the one code path that trains,
evaluates, records and tables the runs. Its summary is one row per model read back from the records: the dense
start (the matrix's checkpoint, or the dense config's last epoch, trained once into ``OUT/dense``), and every
run, all of which start from that checkpoint.
"""
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

from mmdet_adasap.utils.console import echo
from . import run as R
from .compare import dense_checkpoint_path, ensure_dense, run_matrix
from .matrix import Matrix, file_sha256

#: what earlier demo layouts wrote under the work dir; none of it is read
OLD_LAYOUT = ('demo_dense', 'demo_adasap', 'demo_l2prune_sgd', 'demo_sam_asam', 'demo_report', 'demo_summary.json')


def latency_tables(matrix: Matrix) -> Dict[str, str]:
    """method name -> the latency table its config will load, for the latency-target methods."""
    out = {}
    for m in matrix.methods.values():
        if m.kind == 'latency':
            hook = matrix.method_config(m.name).to_dict()
            for key in matrix.ratio_key.split('.')[:-3]:
                hook = hook.get(key, {})
            out[m.name] = hook['latency_table']
    return out


def old_layout(work_root: str) -> List[str]:
    return [osp.join(work_root, n) for n in OLD_LAYOUT if osp.exists(osp.join(work_root, n))]


def summary_rows(matrix: Matrix, out_dir: str, split: str = 'test') -> List[dict]:
    """The dense record and every finished run's record, in matrix order, as table rows."""
    dense = R.read_json(osp.join(out_dir, 'dense', R.RECORD_FILE))
    rows = [dict(dense, label='dense', target='-')]
    for run in matrix.runs(split):
        rec = R.read_json(osp.join(run.work_dir(out_dir), R.RECORD_FILE))
        if rec is not None:
            kind = matrix.methods[run.method].kind
            rows.append(dict(rec, target=f'{run.ratio:g} of the dense {"FLOPs" if kind == "flops" else "latency"}'))
    return rows


def summary_table(rows: List[dict]) -> str:
    lines = ['| model | target | params [M] | FLOPs / dense | latency [ms] | latency / dense | clean mAP | mPC | '
             'rPC [%] |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["label"]} | {r["target"]} | {r["params"] / 1e6:.3f} | {r["flops_ratio"]:.3f} | '
                     f'{r["latency_ms"]:.1f} | {r["latency_ratio"]:.2f} | {r["clean_map"]:.1f} | {r["mpc"]:.1f} | '
                     f'{r["rpc"]:.1f} |')
    return '\n'.join(lines)


def _timed(walls: dict, name: str, fn: Callable, log: Callable[[str], None]):
    log(f'\n=== {name} ===')
    start = time.perf_counter()
    out = fn()
    walls[name] = time.perf_counter() - start
    log(f'=== {name}: {walls[name] / 60:.1f} min ===')
    return out


def run_demo(matrix: Matrix, out_dir: str, build_table: Callable[[str], None], ensure_data: Callable[[], None],
             transform: Optional[Callable] = None, log: Callable[[str], None] = echo, split: str = 'test') -> dict:
    """Data, latency tables, the dense start, then the matrix; returns the summary (rows, walls, paths)."""
    walls = {}
    _timed(walls, 'synthetic VOC data', ensure_data, log)
    for name, path in latency_tables(matrix).items():
        if osp.isfile(path):
            log(f'[demo] reusing the latency table of {name}: {path}')
            continue
        _timed(walls, f'latency table for {name} ({path})', lambda p=path: build_table(p), log)
    what = (f'dense start ({matrix.dense_checkpoint})' if matrix.dense_checkpoint else
            f'dense start (trains {matrix.dense_config}; its last epoch)')
    dense = _timed(walls, what, lambda: ensure_dense(matrix, out_dir, split, transform, log), log)
    paths = _timed(walls, 'the runs: train, evaluate, record',
                   lambda: run_matrix(matrix, out_dir, split, transform=transform, log=log), log)
    rows = summary_rows(matrix, out_dir, split)
    assert dense == dense_checkpoint_path(matrix, out_dir, split)
    sha = file_sha256(dense)
    for r in rows[1:]:  # every run starts from the dense row's checkpoint
        if r['dense_sha256'] != sha:
            raise ValueError(f'run {r["method"]} started from another dense checkpoint than {dense}')
    return dict(rows=rows, table=summary_table(rows), walls=walls, paths=paths, dense_checkpoint=dense,
                runs={r['method']: r['wall_s'] for r in rows[1:]})
