"""Reports of robustness results: JSON, markdown tables and PNG plots, for one model or several side by side.

Tables show mAP and AP as percentages (x100, 2 decimals) as the Pascal-C papers do; the JSON keeps the
metric's exact fractions.
"""
import io
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from .corruptions import CORRUPTION_GROUPS
from .result import RESULT_FILE, check_comparable, load_result, metric_key
from ..utils.io import atomic_write_bytes, atomic_write_json


def pct(value: Optional[float]) -> str:
    return '-' if value is None else f'{100 * value:.2f}'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    return ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|'] + \
        ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]


def markdown_report(result: dict) -> str:
    s, ds, proto = result['summary'], result['dataset'], result['protocol']
    key = metric_key(result)
    how = proto['eval_mode'] or proto.get('metric_type') or '-'
    lines = [f'# Robustness of {result["model"]["label"]}', '',
             f'Data: `{ds["ann_file"]}` ({ds["num_images"]} images, {len(ds["classes"])} classes). '
             f'{proto["metric"]} ({how}; metric key `{key}`); corruptions {proto["corruption"]}; '
             f'source: {proto["cache_format"] and "cache (" + proto["cache_format"] + ")" or "rendered on the fly"}.',
             f'Values are {proto["metric"]} x 100. '
             f'mPC: mean over {len(s["benchmark_corruptions"])} benchmark corruptions x '
             f'severities {s["severities"]}' + ('' if s['complete_benchmark'] else ' (a subset: not the full 15 x 5 '
                                                                                   'benchmark)') + '.', '']
    lines += _table([f'P (clean, {key})', 'mPC', 'rPC [%]', 'mPC holdout', 'rPC holdout [%]'],
                    [[pct(s['P']), pct(s['mPC']), pct(s['rPC']), pct(s['mPC_holdout']), pct(s['rPC_holdout'])]])
    if s['per_category']:
        lines += ['', '## Per category (benchmark corruptions)', '']
        lines += _table(list(s['per_category']), [[pct(v) for v in s['per_category'].values()]])
    if s['per_severity']:
        lines += ['', '## Per severity (benchmark corruptions)', '']
        lines += _table([f's{k}' for k in s['per_severity']], [[pct(v) for v in s['per_severity'].values()]])
    lines += ['', '## Per corruption', '']
    rows = [[c + (' (holdout)' if pc['holdout'] else ''), pc['group']] + [pct(v) for v in pc['by_severity'].values()]
            + [pct(pc['mean'])] for c, pc in s['per_corruption'].items()]
    lines += _table(['corruption', 'group'] + [f's{k}' for k in s['severities']] + ['mean'], rows)
    lines += ['', '## Per class', '']
    if s['per_class']:
        lines += _table(['class', 'P', 'mPC', 'rPC [%]'],
                        [[cls, pct(v['P']), pct(v['mPC']), pct(v['rPC'])] for cls, v in s['per_class'].items()])
    else:
        lines += [f'The metric gives no per-class values for `{key}` (CocoMetric: set `classwise=True`, '
                  'with a `*_mAP` key).']
    lines += ['', '## Evaluation time per set', '']
    by_source = {}
    for rec in [result['clean']] + [r for by_sev in result['corrupted'].values() for r in by_sev.values()]:
        by_source.setdefault(rec['source'], []).append(rec['seconds'])
    lines += _table(['source', 'sets', 'mean seconds', 'vs clean'],
                    [[src, len(t), f'{sum(t) / len(t):.2f}', f'{sum(t) / len(t) / result["clean"]["seconds"]:.2f}x']
                     for src, t in by_source.items()])
    return '\n'.join(lines) + '\n'


def _save_figure(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
    atomic_write_bytes(path, buf.getvalue())


def plot_severity_curves(results: Sequence[dict], labels: Sequence[str], path: str) -> None:
    """mAP vs severity (0 = clean), one panel per corruption, one line per model."""
    import matplotlib  # optional plotting dependency, loaded only to draw
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional plotting dependency
    corruptions = list(results[0]['summary']['per_corruption'])
    cols = min(5, max(1, len(corruptions)))
    rows = -(-len(corruptions) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, c in zip(axes.flat, corruptions):
        for res, label in zip(results, labels):
            by_sev = res['summary']['per_corruption'][c]['by_severity']
            xs = [0] + [int(k) for k in by_sev]
            ys = [100 * res['summary']['P']] + [100 * v for v in by_sev.values()]
            ax.plot(xs, ys, marker='o', label=label)
        ax.set_title(c, fontsize=9)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(corruptions):]:
        ax.axis('off')
    for ax in axes[:, 0]:
        ax.set_ylabel(f'{results[0]["protocol"]["metric"]} x 100')
    for ax in axes[-1]:
        ax.set_xlabel('severity (0 = clean)')
    axes.flat[0].legend(fontsize=7)
    _save_figure(fig, path)
    plt.close(fig)


def plot_corruption_bars(results: Sequence[dict], labels: Sequence[str], path: str) -> None:
    """Mean AP50 over severities per corruption (plus clean and mPC), one bar per model."""
    import matplotlib  # optional plotting dependency, loaded only to draw
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional plotting dependency
    corruptions = list(results[0]['summary']['per_corruption'])
    names = ['clean'] + corruptions + ['mPC']
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names) * max(1, len(results)) ** 0.5 + 2), 3.8))
    width = 0.8 / len(results)
    for i, (res, label) in enumerate(zip(results, labels)):
        s = res['summary']
        vals = [s['P']] + [s['per_corruption'][c]['mean'] for c in corruptions] + [s['mPC']]
        ax.bar(np.arange(len(names)) + (i - (len(results) - 1) / 2) * width,
               [100 * (v if v is not None else float('nan')) for v in vals], width, label=label)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
    ax.set_ylabel(f'{results[0]["protocol"]["metric"]} x 100 (mean over severities)')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)


def write_reports(result: dict, out_dir: str, plots: bool = True) -> dict:
    """``robustness.json``, ``robustness.md`` and (optionally) the two PNG plots; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(json=osp.join(out_dir, RESULT_FILE), markdown=osp.join(out_dir, 'robustness.md'))
    atomic_write_json(paths['json'], result)
    atomic_write_bytes(paths['markdown'], markdown_report(result).encode())
    if plots:
        label = [result['model']['label']]
        paths['severity_plot'] = osp.join(out_dir, 'severity_curves.png')
        paths['corruption_plot'] = osp.join(out_dir, 'corruption_bars.png')
        plot_severity_curves([result], label, paths['severity_plot'])
        plot_corruption_bars([result], label, paths['corruption_plot'])
    return paths


def comparison_markdown(results: Sequence[dict], labels: Sequence[str]) -> str:
    groups = [g for g in CORRUPTION_GROUPS if g in results[0]['summary']['per_category']]
    lines = ['# Robustness comparison', '',
             f'{results[0]["protocol"]["metric"]} x 100 (metric key `{metric_key(results[0])}`); rPC in %.', '']
    lines += _table(['model', 'P', 'mPC', 'rPC'] + groups,
                    [[label, pct(r['summary']['P']), pct(r['summary']['mPC']), pct(r['summary']['rPC'])]
                     + [pct(r['summary']['per_category'][g]) for g in groups] for r, label in zip(results, labels)])
    lines += ['', '## Per corruption (mean over severities)', '']
    corruptions = list(results[0]['summary']['per_corruption'])
    lines += _table(['corruption'] + list(labels),
                    [[c] + [pct(r['summary']['per_corruption'][c]['mean']) for r in results] for c in corruptions])
    lines += ['', '## Per severity (benchmark corruptions)', '']
    sev = list(results[0]['summary']['per_severity'])
    lines += _table(['model'] + [f's{k}' for k in sev],
                    [[label] + [pct(r['summary']['per_severity'][k]) for k in sev]
                     for r, label in zip(results, labels)])
    return '\n'.join(lines) + '\n'


def write_comparison(paths: Sequence[str], out_dir: str, labels: Optional[Sequence[str]] = None) -> dict:
    """One table and two plots for several result JSONs (e.g. dense, L2-pruned, AdaSAP)."""
    results = [load_result(p) for p in paths]
    if labels is None:
        labels = [r['model']['label'] for r in results]
        if len(set(labels)) < len(labels):
            labels = [f'{lab} ({osp.basename(osp.dirname(osp.abspath(p)))})' for lab, p in zip(labels, paths)]
    if len(labels) != len(results):
        raise ValueError(f'{len(labels)} labels for {len(results)} result files')
    check_comparable(results, list(paths), same_grid=True)
    os.makedirs(out_dir, exist_ok=True)
    out = dict(markdown=osp.join(out_dir, 'comparison.md'), corruption_plot=osp.join(out_dir, 'comparison_bars.png'),
               severity_plot=osp.join(out_dir, 'comparison_severity.png'))
    atomic_write_bytes(out['markdown'], comparison_markdown(results, labels).encode())
    plot_corruption_bars(results, labels, out['corruption_plot'])
    plot_severity_curves(results, labels, out['severity_plot'])
    return out
