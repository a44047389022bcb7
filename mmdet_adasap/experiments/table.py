"""The matrix's tables and plots, built only from the runs' own record files (so a table can always be
rebuilt, and checked, from what the runs wrote): ``results.json``, ``results.md``, ``results_vs_flops.png``,
``results_categories.png``.

Every run's robustness result is re-read and checked against the dense one (same images, classes, AP protocol,
corruptions and severities) before any number is put beside another.
"""
import glob
import os.path as osp
from typing import Dict, List

from mmdet_adasap.analysis.stats import INTERVAL, paired_difference, summarize_seeds
from mmdet_adasap.robustness.corruptions import CORRUPTION_GROUPS
from mmdet_adasap.robustness.result import check_comparable, load_result
from mmdet_adasap.utils.io import atomic_write_bytes, atomic_write_json
from . import run as R
from .matrix import Matrix
from .plots import plot_categories, plot_vs_flops

RESULTS_SCHEMA = 'mmdet_adasap.compare/1'
METRICS = (('params_ratio', 'params', 3), ('flops_ratio', 'FLOPs', 3), ('latency_ms', 'latency [ms]', 2),
           ('latency_ratio', 'latency / dense', 2),  # the ratio of one interleaved measurement: robust to load
           ('clean_map', 'clean mAP', 1), ('mpc', 'mPC', 1), ('rpc', 'rPC [%]', 1), ('mpc_unseen', 'mPC unseen', 1))
PAIRED = ('clean_map', 'mpc', 'rpc')
LABELS = {key: label for key, label, _ in METRICS}
CONFIDENCE = 0.95


def collect(matrix: Matrix, out_dir: str, split: str, dense: dict) -> List[dict]:
    """The finished runs' records in matrix order, after the comparability checks (names the offending run)."""
    order = {r.name: i for i, r in enumerate(matrix.runs(split))}
    records, results, names = [], [load_result(osp.join(out_dir, 'dense', dense['robustness']))], ['dense']
    for path in glob.glob(osp.join(out_dir, 'runs', '*', '*', '*', R.RECORD_FILE)):
        rec = R.read_json(path)
        R.check_same(path, rec['protocol'], dense['protocol'], 'run')
        results.append(load_result(osp.join(osp.dirname(path), rec['robustness'])))
        names.append(path)
        records.append(rec)
    check_comparable(results, names, same_grid=True)
    name = lambda r: f'{r["method"]}/ratio{r["ratio"]:g}/seed{r["seed"]}'  # noqa: E731
    return sorted(records, key=lambda r: order.get(name(r), len(order)))


def summarize(records: List[dict], matrix: Matrix) -> List[dict]:
    """Mean +- std over seeds of every metric, per (ratio, method)."""
    rows = []
    for ratio in matrix.ratios:
        for method in matrix.methods:
            cell = [r for r in records if r['ratio'] == ratio and r['method'] == method]
            if not cell:
                continue
            row = dict(ratio=ratio, method=method, label=matrix.methods[method].label,
                       seeds=[r['seed'] for r in cell])
            for key, _, _ in METRICS:
                vals = [r[key] for r in cell if r.get(key) is not None]
                row[key] = summarize_seeds(vals, f'{method} {ratio} {key}').__dict__ if vals else None
            cats = {g for r in cell for g in r['per_category']}
            row['per_category'] = {g: summarize_seeds([r['per_category'][g] for r in cell]).__dict__
                                   for g in CORRUPTION_GROUPS if g in cats}
            rows.append(row)
    return rows


def paired(records: List[dict], matrix: Matrix) -> List[dict]:
    """reference - baseline, seed by seed, over the seeds both have finished."""
    out = []
    ref = matrix.reference
    for ratio in matrix.ratios:
        by = {m: {r['seed']: r for r in records if r['ratio'] == ratio and r['method'] == m} for m in matrix.methods}
        for other in matrix.methods:
            seeds = sorted(set(by[ref]) & set(by[other]))
            if other == ref or not seeds:
                continue
            for key in PAIRED:
                d = paired_difference({s: by[ref][s][key] for s in seeds}, {s: by[other][s][key] for s in seeds},
                                      CONFIDENCE, f'{ref} - {other} {key} at {ratio}')
                out.append(dict(ratio=ratio, reference=ref, baseline=other, metric=key, **d.to_dict()))
    return out


def _cell(stat, digits):
    return '-' if stat is None else (f'{stat["mean"]:.{digits}f}' +
                                     ('' if stat['std'] is None else f' +- {stat["std"]:.{digits}f}'))


def markdown(results: dict, matrix: Matrix) -> str:
    p, dense = results['protocol'], results['dense']
    n_done, n_all = len(results['runs']), len(matrix.runs(p['split']))
    lines = [f'# Method comparison ({p["split"]} split)', '',
             f'{n_done} of {n_all} runs finished. Mean +- std (ddof=1) over seeds; mAP = VOC AP50 x 100; mPC over '
             f'{len(p["corruptions"])} benchmark corruptions x severities {p["severities"]}; "unseen": '
             f'{", ".join(p["unseen"]) or "none"} (never in mPC); latency: median of {p["latency"]["repeats"]} '
             f'batch-1 runs on {p["latency"]["threads"]} CPU thread(s), interleaved with the dense model; '
             f'params / FLOPs as fractions of the dense model.', '',
             f'Dense start (sha256 {p["dense_sha256"][:12]}): clean mAP {dense["clean_map"]:.1f}, mPC '
             f'{dense["mpc"]:.1f}, rPC {dense["rpc"]:.1f} %, {dense["params"] / 1e6:.3f} M params, '
             f'{dense["flops"] / 1e9:.3f} G FLOPs, {dense["latency_ms"]:.2f} ms.', '',
             'Wall time of the finished runs: ' + _walls(results['runs']) + '.', '']
    for ratio in matrix.ratios:
        rows = [r for r in results['summary'] if r['ratio'] == ratio]
        if not rows:
            continue
        lines += [f'## Target {ratio:g} of the dense FLOPs', '',
                  '| method | seeds | ' + ' | '.join(t for _, t, _ in METRICS) + ' |',
                  '|---|---|' + '---|' * len(METRICS)]
        lines += [f'| {r["label"]} | {len(r["seeds"])} | ' + ' | '.join(_cell(r[k], d) for k, _, d in METRICS) + ' |'
                  for r in rows]
        diffs = [d for d in results['paired'] if d['ratio'] == ratio]
        if diffs:
            ref = matrix.methods[matrix.reference].label
            lines += ['', f'Paired difference {ref} - baseline (same seed), mean [{CONFIDENCE:.0%} {INTERVAL} '
                      'interval]; * = the interval excludes 0:', '',
                      '| baseline | seeds | ' + ' | '.join(LABELS[k] for k in PAIRED) + ' |',
                      '|---|---|' + '---|' * len(PAIRED)]
            for base in dict.fromkeys(d['baseline'] for d in diffs):
                cells = {d['metric']: d for d in diffs if d['baseline'] == base}
                lines.append(f'| {matrix.methods[base].label} | {cells["mpc"]["n"]} | ' + ' | '.join(
                    _diff(cells[k]) for k in PAIRED) + ' |')
        lines.append('')
    return '\n'.join(lines)


def _walls(runs: List[dict]) -> str:
    total = sum(r['wall_s']['total'] for r in runs)
    parts = {k: sum(r['wall_s'].get(k, 0) for r in runs) for k in ('train', 'evaluate', 'cost')}
    return f'{total / 3600:.2f} h (' + ', '.join(f'{k} {v / 3600:.2f} h' for k, v in parts.items()) + \
        '; a resumed run counts its last attempt only)'


def _diff(d: dict) -> str:
    if d['low'] is None:
        return f'{d["mean"]:+.2f} (n=1)'
    return f'{d["mean"]:+.2f} [{d["low"]:+.2f}, {d["high"]:+.2f}]' + (' *' if d['excludes_zero'] else '')


def write_results(matrix: Matrix, out_dir: str, split: str, dense: dict) -> Dict[str, str]:
    records = collect(matrix, out_dir, split, dense)
    results = dict(schema=RESULTS_SCHEMA, matrix=matrix.source, split=split, protocol=dense['protocol'],
                   interval=f'{CONFIDENCE:.0%} {INTERVAL}, paired by seed', dense=dense, runs=records,
                   summary=summarize(records, matrix), paired=paired(records, matrix))
    paths = dict(json=osp.join(out_dir, 'results.json'), markdown=osp.join(out_dir, 'results.md'),
                 flops_plot=osp.join(out_dir, 'results_vs_flops.png'),
                 category_plot=osp.join(out_dir, 'results_categories.png'))
    atomic_write_json(paths['json'], results)
    atomic_write_bytes(paths['markdown'], markdown(results, matrix).encode())
    plot_vs_flops(results, matrix, paths['flops_plot'])
    plot_categories(results, matrix, paths['category_plot'])
    return paths
