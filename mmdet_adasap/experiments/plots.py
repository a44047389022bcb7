"""The matrix's figures: mPC and clean mAP against the FLOPs ratio (mean +- std over seeds, one line per
method, dense and the no-pruning controls as points at 1.0), per-corruption-category mPC at one ratio, and the
end of pruning against the final model, per method."""
import io

import numpy as np

from mmdet_adasap.utils.io import atomic_write_bytes


def _pyplot():
    import matplotlib  # optional plotting dependency, loaded only to draw
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional plotting dependency
    return plt


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
    atomic_write_bytes(path, buf.getvalue())


def _unit(results: dict) -> str:
    """The y unit: the evaluator key the numbers are computed on (VOC AP50 for a protocol recorded without one)."""
    key = results['protocol'].get('metric_key') or 'pascal_voc/mAP'
    return 'AP50 x 100' if key == 'pascal_voc/mAP' else f'{key} x 100'


def plot_vs_flops(results: dict, matrix, path: str) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    dense = results['dense']
    for ax, key, title in zip(axes, ('mpc', 'clean_map'), ('mPC (corrupted test)', 'clean mAP')):
        for method, m in matrix.methods.items():
            rows = sorted((r for r in results['summary'] if r['method'] == method and r[key] and
                           r['kind'] in ('flops', 'control')), key=lambda r: r['ratio'])
            if rows:
                ax.errorbar([r['flops_ratio']['mean'] for r in rows], [r[key]['mean'] for r in rows],
                            yerr=[r[key]['std'] or 0 for r in rows], capsize=3, label=m.label,
                            marker='s' if m.kind == 'control' else 'o', linestyle='none' if m.kind == 'control' else '-')
        ax.plot([1.0], [dense[key]], marker='*', markersize=12, color='k', linestyle='none', label='dense start')
        ax.set_xlabel('FLOPs / dense FLOPs')
        ax.set_ylabel(f'{title}, {_unit(results)}')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_categories(results: dict, matrix, path: str) -> None:
    plt = _pyplot()
    ratio = matrix.evaluation['category_ratio']
    rows = [r for r in results['summary'] if r['ratio'] == ratio and r['kind'] == 'flops']
    groups = list(results['dense']['per_category'])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 3.8))
    width = 0.8 / (len(rows) + 1)
    x = np.arange(len(groups))
    ax.bar(x - 0.4 + width / 2, [results['dense']['per_category'][g] for g in groups], width, label='dense',
           color='#999999')
    for i, r in enumerate(rows, start=1):
        cats = r['per_category']
        ax.bar(x - 0.4 + (i + 0.5) * width, [cats[g]['mean'] if g in cats else np.nan for g in groups], width,
               yerr=[(cats[g]['std'] or 0) if g in cats else 0 for g in groups], capsize=2, label=r['label'])
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylabel(f'mPC of the category, {_unit(results)}')
    ax.set_title(f'per corruption category at {ratio:g} of the dense FLOPs')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_end_of_pruning(results: dict, matrix, path: str) -> None:
    """mPC and clean mAP at the end of pruning and after the fine-tune, one line per (method, target)."""
    plt = _pyplot()
    rows = [r for r in results['summary'] if r.get('end_of_pruning')]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in zip(axes, ('mpc', 'clean_map'), ('mPC (corrupted test)', 'clean mAP')):
        for r in rows:
            pts = [r['end_of_pruning'][key], r['final_of_those'][key]]
            ax.errorbar([0, 1], [p['mean'] for p in pts], yerr=[p['std'] or 0 for p in pts], marker='o', capsize=3,
                        label=f'{r["label"]} ({r["ratio"]:g} {r["kind"]})')
        ax.set_xticks([0, 1])
        ax.set_xticklabels(['end of pruning', 'after fine-tune'])
        ax.set_xlim(-0.3, 1.3)
        ax.set_ylabel(f'{title}, {_unit(results)}')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
