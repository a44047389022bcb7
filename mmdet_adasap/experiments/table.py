"""The matrix's tables and plots, built only from the runs' own record files (so a table can always be
rebuilt, and checked, from what the runs wrote): ``results.json``, ``results.md``, ``results_vs_flops.png``,
``results_categories.png``.

Every run's robustness result is re-read and checked against the dense one (same images, classes, AP protocol,
corruptions and severities) before any number is put beside another. Each kind of method (FLOPs target, latency
target, no-pruning control) has its own sections and its own reference; a latency-target pair counts only when
the two runs' measured latencies match; the end of pruning has a table of its own beside the final numbers.
"""
import glob
import os.path as osp
from typing import Dict, List, Optional

from mmdet_adasap.analysis.stats import (INTERVAL, format_mean_std, format_paired, paired_difference,
                                         summarize_seeds)
from mmdet_adasap.robustness.corruptions import CORRUPTION_GROUPS
from mmdet_adasap.robustness.loop import VOC_METRIC_KEY
from mmdet_adasap.robustness.result import check_comparable, load_result
from mmdet_adasap.utils.io import atomic_write_bytes, atomic_write_json
from . import run as R
from .ablation import ablation_effects, ablation_markdown
from .matrix import Matrix
from .plots import plot_categories, plot_end_of_pruning, plot_vs_flops

RESULTS_SCHEMA = 'mmdet_adasap.compare/1'
METRICS = (('params_ratio', 'params', 3), ('flops_ratio', 'FLOPs', 3), ('latency_ms', 'latency [ms]', 2),
           ('latency_ratio', 'latency / dense', 2),  # the ratio of one interleaved measurement: robust to load
           ('clean_map', 'clean mAP', 1), ('mpc', 'mPC', 1), ('rpc', 'rPC [%]', 1), ('mpc_unseen', 'mPC unseen', 1))
PAIRED = ('clean_map', 'mpc', 'rpc')
END_METRICS = (('clean_map', 'clean mAP'), ('mpc', 'mPC'))
KIND_TITLES = dict(flops='Target {r:g} of the dense FLOPs', latency='Target {r:g} of the dense latency',
                   control='Control: no pruning, the dense start trained on')
LABELS = {key: label for key, label, _ in METRICS}
CONFIDENCE = 0.95


def collect(matrix: Matrix, out_dir: str, split: str, dense: dict) -> List[dict]:
    """The finished runs' records in matrix order, after the comparability checks (names the offending run)."""
    order = {r.name: i for i, r in enumerate(matrix.runs(split))}
    records, results, names = [], [load_result(osp.join(out_dir, 'dense', dense['robustness']))], ['dense']
    for path in glob.glob(osp.join(out_dir, 'runs', '*', '*', '*', R.RECORD_FILE)):
        rec = R.read_json(path)
        R.check_protocol(path, rec['protocol'], dense['protocol'], 'run')
        results.append(load_result(osp.join(osp.dirname(path), rec['robustness'])))
        names.append(path)
        if rec.get('end_of_pruning'):
            results.append(load_result(osp.join(osp.dirname(path), rec['end_of_pruning']['robustness'])))
            names.append(f'{path} (end of pruning)')
        records.append(rec)
    check_comparable(results, names, same_grid=True)
    name = lambda r: f'{r["method"]}/ratio{r["ratio"]:g}/seed{r["seed"]}'  # noqa: E731
    return sorted(records, key=lambda r: order.get(name(r), len(order)))


def _kind(rec: dict, matrix: Matrix) -> str:
    method = matrix.methods.get(rec['method'])
    return rec.get('kind') or (method.kind if method else 'flops')


def sections(matrix: Matrix):
    """(kind, ratio) of every table section in matrix order."""
    seen = []
    for run in matrix.runs(next(iter(matrix.seeds))):
        key = (matrix.methods[run.method].kind, run.ratio)
        if key not in seen:
            seen.append(key)
    return seen


def _stats(cell: List[dict], what: str, get) -> Optional[dict]:
    vals = [v for v in (get(r) for r in cell) if v is not None]
    return summarize_seeds(vals, what).__dict__ if vals else None


def summarize(records: List[dict], matrix: Matrix) -> List[dict]:
    """Mean +- std over seeds of every metric, per (kind, ratio, method)."""
    rows = []
    for kind, ratio in sections(matrix):
        for method in matrix.methods:
            cell = [r for r in records if r['ratio'] == ratio and r['method'] == method and _kind(r, matrix) == kind]
            if not cell:
                continue
            row = dict(kind=kind, ratio=ratio, method=method, label=matrix.methods[method].label,
                       seeds=[r['seed'] for r in cell], **matrix.methods[method].arm())  # schedule, phases
            for key, _, _ in METRICS:
                row[key] = _stats(cell, f'{method} {ratio} {key}', lambda r: r.get(key))
            cats = {g for r in cell for g in r['per_category']}
            row['per_category'] = {g: summarize_seeds([r['per_category'][g] for r in cell]).__dict__
                                   for g in CORRUPTION_GROUPS if g in cats}
            ends = [r for r in cell if r.get('end_of_pruning')]
            if ends:
                row['end_of_pruning'] = dict(seeds=[r['seed'] for r in ends], **{
                    key: _stats(ends, f'{method} {ratio} end-of-pruning {key}', lambda r: r['end_of_pruning'][key])
                    for key in ('clean_map', 'mpc', 'rpc', 'flops_ratio')})
                row['final_of_those'] = {key: _stats(ends, f'{method} {ratio} {key}', lambda r: r[key])
                                         for key in ('clean_map', 'mpc')}
            rows.append(row)
    return rows


def _latency_matched(ref: dict, base: dict, tolerance: float) -> bool:
    """Both runs' measured latency / dense agree within ``tolerance`` (relative)."""
    a, b = ref.get('latency_ratio'), base.get('latency_ratio')
    return a is not None and b is not None and abs(a - b) <= tolerance * max(a, b)


def paired(records: List[dict], matrix: Matrix) -> List[dict]:
    """reference - baseline, seed by seed, over the seeds both have finished, per section with the reference of
    its kind; latency sections pair only runs whose measured latency matches; the end of pruning is paired too."""
    out = []
    tol = matrix.evaluation['latency_match']
    for kind, ratio in sections(matrix):
        ref = matrix.references.get(kind)
        if ref is None:
            continue
        by = {m: {r['seed']: r for r in records if r['ratio'] == ratio and r['method'] == m and
                  _kind(r, matrix) == kind} for m in matrix.methods}
        for other in matrix.methods:
            seeds = sorted(set(by[ref]) & set(by[other]))
            if other == ref or not seeds:
                continue
            unmatched = [s for s in seeds if kind == 'latency' and not _latency_matched(by[ref][s], by[other][s], tol)]
            seeds = [s for s in seeds if s not in unmatched]
            where = [('final', lambda r: r, PAIRED)]
            if any(by[ref][s].get('end_of_pruning') and by[other][s].get('end_of_pruning') for s in seeds):
                where.append(('end_of_pruning', lambda r: r.get('end_of_pruning'), ('clean_map', 'mpc')))
            for stage, get, keys in where:
                pairs = [s for s in seeds if get(by[ref][s]) and get(by[other][s])]
                for key in keys if pairs else ():
                    a, b = ({s: get(by[m][s])[key] for s in pairs} for m in (ref, other))
                    both = [s for s in pairs if a[s] is not None and b[s] is not None]  # rPC: None at mAP 0
                    if not both:
                        continue
                    d = paired_difference({s: a[s] for s in both}, {s: b[s] for s in both},
                                          CONFIDENCE, f'{ref} - {other} {key} at {kind} {ratio} ({stage})')
                    out.append(dict(kind=kind, ratio=ratio, stage=stage, reference=ref, baseline=other, metric=key,
                                    unmatched_seeds=unmatched, **d.to_dict()))
    return out


def markdown(results: dict, matrix: Matrix) -> str:
    p, dense = results['protocol'], results['dense']
    n_done, n_all = len(results['runs']), len(matrix.runs(p['split']))
    lines = [f'# Method comparison ({p["split"]} split)', '',
             f'{n_done} of {n_all} runs finished. Mean +- std (ddof=1) over seeds; {metric_note(p)}; mPC over '
             f'{len(p["corruptions"])} benchmark corruptions x severities {p["severities"]}; "unseen": '
             f'{", ".join(p["unseen"]) or "none"} (never in mPC); latency: median of {p["latency"]["repeats"]} '
             f'batch-1 runs on {p["latency"]["threads"]} CPU thread(s), interleaved with the dense model; '
             f'params / FLOPs as fractions of the dense model.' + _retimed(results), '',
             f'Dense start (sha256 {p["dense_sha256"][:12]}): clean mAP {dense["clean_map"]:.1f}, mPC '
             f'{dense["mpc"]:.1f}, rPC {dense["rpc"]:.1f} %, {dense["params"] / 1e6:.3f} M params, '
             f'{dense["flops"] / 1e9:.3f} G FLOPs, {dense["latency_ms"]:.2f} ms.', '',
             'Wall time of the finished runs: ' + _walls(results['runs']) + '.', '']
    for kind, ratio in sections(matrix):
        lines += _section(results, matrix, kind, ratio)
    lines += _end_of_pruning_section(results, matrix)
    lines += ablation_markdown(results.get('ablation'), {k: m.label for k, m in matrix.methods.items()})
    return '\n'.join(lines)


def metric_key(protocol: dict) -> str:
    """The key the clean mAP / mPC / rPC columns are computed on (a protocol recorded before matrices had a
    ``metric_key`` was VOC's)."""
    return protocol.get('metric_key') or VOC_METRIC_KEY


def metric_note(protocol: dict) -> str:
    """What "mAP" means in this table: the evaluator key it is computed on, x 100."""
    key = metric_key(protocol)
    what = 'VOC AP50' if key == VOC_METRIC_KEY else 'the evaluator\'s value'
    return f'metric key `{key}` ("clean mAP", mPC and rPC are {what} x 100 on it)'


def _retimed(results: dict) -> str:
    """Which latencies were timed again on an idle machine (``--remeasure-latency``) and which during the runs."""
    n = sum('latency_in_run' in r for r in results['runs'])
    if not n and 'latency_in_run' not in results['dense']:
        return ''
    return (f' Latency timed again on an idle machine for the dense start and {n} of {len(results["runs"])} '
            'runs (`--remeasure-latency`); the others as timed during the run, beside other runs.')


def _section(results: dict, matrix: Matrix, kind: str, ratio: float) -> List[str]:
    rows = [r for r in results['summary'] if r['ratio'] == ratio and r['kind'] == kind]
    if not rows:
        return []
    lines = ['## ' + KIND_TITLES[kind].format(r=ratio), '',
             '| method | seeds | ' + ' | '.join(t for _, t, _ in METRICS) + ' |', '|---|---|' + '---|' * len(METRICS)]
    lines += [f'| {r["label"]} | {len(r["seeds"])} | ' +
              ' | '.join(format_mean_std(r[k], d) for k, _, d in METRICS) + ' |'
              for r in rows]
    diffs = [d for d in results['paired'] if d['ratio'] == ratio and d['kind'] == kind and d['stage'] == 'final']
    if diffs:
        ref = matrix.methods[diffs[0]['reference']].label
        lines += ['', f'Paired difference {ref} - baseline (same seed), mean [{CONFIDENCE:.0%} {INTERVAL} '
                  'interval]; * = the interval excludes 0:', '',
                  '| baseline | seeds | ' + ' | '.join(LABELS[k] for k in PAIRED) + ' |',
                  '|---|---|' + '---|' * len(PAIRED)]
        for base in dict.fromkeys(d['baseline'] for d in diffs):
            cells = {d['metric']: d for d in diffs if d['baseline'] == base}
            lines.append(f'| {matrix.methods[base].label} | {cells["mpc"]["n"]} | ' + ' | '.join(
                format_paired(cells[k]) for k in PAIRED) + ' |')
        unmatched = {d['baseline']: d['unmatched_seeds'] for d in diffs if d['unmatched_seeds']}
        for base, seeds in unmatched.items():
            lines.append(f'\nNot paired with {matrix.methods[base].label} (measured latency / dense differs by more '
                         f'than {matrix.evaluation["latency_match"]:.0%}): seed(s) {seeds}.')
    lines.append('')
    return lines


def _end_of_pruning_section(results: dict, matrix: Matrix) -> List[str]:
    rows = [r for r in results['summary'] if r.get('end_of_pruning')]
    if not rows:
        return []
    lines = ['## The end of pruning (before the fine-tune) and the final model', '',
             'The same runs, evaluated on the checkpoint of the pruning phase\'s last iteration and after the '
             'fine-tune; mean +- std over the seeds that have both.', '',
             '| target | method | seeds | FLOPs | clean mAP, end of pruning | clean mAP, final | mPC, end of pruning '
             '| mPC, final |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        e, f = r['end_of_pruning'], r['final_of_those']
        cells = ' | '.join(format_mean_std(s[k]) for k in ('clean_map', 'mpc') for s in (e, f))
        lines.append(f'| {r["ratio"]:g} {r["kind"]} | {r["label"]} | {len(e["seeds"])} | '
                     f'{format_mean_std(e["flops_ratio"], 3)} | {cells} |')
    diffs = [d for d in results['paired'] if d['stage'] == 'end_of_pruning']
    if diffs:
        lines += ['', f'Paired difference reference - baseline at the end of pruning, mean [{CONFIDENCE:.0%} '
                  f'{INTERVAL} interval]:', '', '| target | reference | baseline | seeds | clean mAP | mPC |',
                  '|---|---|---|---|---|---|']
        for key in dict.fromkeys((d['kind'], d['ratio'], d['baseline']) for d in diffs):
            cells = {d['metric']: d for d in diffs if (d['kind'], d['ratio'], d['baseline']) == key}
            ref = matrix.methods[cells['mpc']['reference']].label
            lines.append(f'| {key[1]:g} {key[0]} | {ref} | {matrix.methods[key[2]].label} | {cells["mpc"]["n"]} | '
                         f'{format_paired(cells["clean_map"])} | {format_paired(cells["mpc"])} |')
    lines.append('')
    return lines


def _walls(runs: List[dict]) -> str:
    total = sum(r['wall_s']['total'] for r in runs)
    parts = {k: sum(r['wall_s'].get(k, 0) for r in runs) for k in ('train', 'evaluate', 'cost')}
    return f'{total / 3600:.2f} h (' + ', '.join(f'{k} {v / 3600:.2f} h' for k, v in parts.items()) + \
        '; a resumed run counts its last attempt only)'


def write_results(matrix: Matrix, out_dir: str, split: str, dense: dict) -> Dict[str, str]:
    records = collect(matrix, out_dir, split, dense)
    results = dict(schema=RESULTS_SCHEMA, matrix=matrix.source, split=split, protocol=dense['protocol'],
                   metric_key=metric_key(dense['protocol']),
                   interval=f'{CONFIDENCE:.0%} {INTERVAL}, paired by seed', dense=dense, runs=records,
                   summary=summarize(records, matrix), paired=paired(records, matrix))
    # the 2x2 phase ablation's main effects, when the matrix's four arms have runs
    effects = ablation_effects([r for r in records if r['method'] in matrix.methods])
    if effects:
        results['ablation'] = effects
    paths = dict(json=osp.join(out_dir, 'results.json'), markdown=osp.join(out_dir, 'results.md'),
                 flops_plot=osp.join(out_dir, 'results_vs_flops.png'),
                 category_plot=osp.join(out_dir, 'results_categories.png'))
    atomic_write_json(paths['json'], results)
    atomic_write_bytes(paths['markdown'], markdown(results, matrix).encode())
    plot_vs_flops(results, matrix, paths['flops_plot'])
    plot_categories(results, matrix, paths['category_plot'])
    if any(r.get('end_of_pruning') for r in results['summary']):
        paths['end_of_pruning_plot'] = osp.join(out_dir, 'results_end_of_pruning.png')
        plot_end_of_pruning(results, matrix, paths['end_of_pruning_plot'])
    return paths
