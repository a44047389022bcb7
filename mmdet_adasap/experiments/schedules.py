"""The schedule length as a factor: the same methods, seeds and dense start run by matrices that differ only in
how many epochs each run trains (``schedule=`` of the method table, :mod:`.arms`).

Why a separate step and not one matrix with both schedules: a matrix's table pairs its methods at one schedule;
the question "does a method need a longer schedule?" pairs each method with itself across schedules, and a
longer schedule is run (and published) as its own matrix, usually later. So this reads the tables the harness
already wrote (each matrix's ``results.json``: plan -> run -> record -> table -> this), refuses matrices that
were not measured alike (dense start, split, corruptions, severities, metric), and gives per schedule and
method: clean mAP / mPC / rPC over the seeds, the median training time and its ratio to the reference method at
the same schedule (the time-matched reading); each method minus the reference at each schedule, and each
method's change from the shortest schedule, both paired by seed with a Student's t interval; and one figure,
mPC and clean mAP against the schedule length.
"""
import json
import os.path as osp
import statistics
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from mmdet_adasap.analysis.stats import format_mean_std, format_paired, paired_difference, summarize_seeds
from mmdet_adasap.utils.io import atomic_write_bytes, atomic_write_json
from .plots import _pyplot, _save

PROTOCOL_KEYS = ('dense_sha256', 'split', 'split_options', 'corruptions', 'severities', 'eval_cfg_options',
                 'metric_key')
SCORES = ('clean_map', 'mpc', 'rpc')
PAIRED = ('mpc', 'clean_map')


@dataclass
class Schedule:
    """One matrix's table: its runs trained for ``epochs`` epochs each."""
    epochs: int
    source: str
    results: dict

    def runs(self, method: str, ratio: float) -> Dict[int, dict]:
        return {r['seed']: r for r in self.results['runs'] if r['method'] == method and r['ratio'] == ratio}


def load_schedules(folders: Dict[int, str]) -> List[Schedule]:
    """The tables of ``{epochs: results folder}``, shortest schedule first, checked to share one protocol."""
    schedules = []
    for epochs, folder in sorted(folders.items()):
        path = osp.join(folder, 'results.json')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: no table in {folder}; write it with tools/compare_methods.py MATRIX '
                                    f'--out {folder} --table-only')
        with open(path) as f:
            schedules.append(Schedule(int(epochs), folder, json.load(f)))
    if len(schedules) < 2:
        raise ValueError(f'give at least two schedules to compare, got {sorted(folders)}')
    first = schedules[0]
    for other in schedules[1:]:
        for key in PROTOCOL_KEYS:
            a, b = first.results['protocol'].get(key), other.results['protocol'].get(key)
            if a != b:
                raise ValueError(f'{first.source} and {other.source} were not measured alike: protocol {key} is '
                                 f'{a!r} in one and {b!r} in the other')
    return schedules


def _median_train_s(runs: Sequence[dict]) -> Optional[float]:
    """The median training wall time of the runs trained in one attempt (a resumed run's record holds its last
    attempt only)."""
    times = [r['wall_s']['train'] for r in runs if not r.get('resumed') and 'train' in r.get('wall_s', {})]
    return statistics.median(times) if times else None


def _row(schedule: Schedule, method: str, runs: Dict[int, dict], reference_s: Optional[float]) -> dict:
    train_s = _median_train_s(list(runs.values()))
    return dict(epochs=schedule.epochs, method=method, label=runs[min(runs)]['label'], seeds=sorted(runs),
                **{k: asdict(summarize_seeds([r[k] for r in runs.values()], f'{method} {k}')) for k in SCORES},
                train_s=train_s, train_ratio=train_s / reference_s if train_s and reference_s else None)


def _paired(kind: str, epochs: int, method: str, a: Dict[int, dict], b: Dict[int, dict]) -> List[dict]:
    """``a - b`` for each of :data:`PAIRED` over the seeds both have; the others are named, not paired."""
    seeds = sorted(set(a) & set(b))
    out = []
    for key in PAIRED:
        d = paired_difference({s: a[s][key] for s in seeds}, {s: b[s][key] for s in seeds},
                              what=f'{method} {key} {kind} at {epochs} epochs')
        stats = d.to_dict()
        stats['interval'] = stats.pop('method')
        out.append(dict(kind=kind, epochs=epochs, method=method, metric=key,
                        unmatched_seeds=sorted(set(a) ^ set(b)), **stats))
    return out


def compare_schedules(schedules: List[Schedule], methods: List[str], reference: str, ratio: float) -> dict:
    """Rows per (schedule, method) and the paired differences: ``vs_reference`` (method - reference at one
    schedule) and ``vs_shortest`` (a method at a longer schedule - itself at the shortest). A method measured at
    some schedules only has rows there, and a change from the shortest only where both were measured; the
    reference must be measured at every schedule."""
    if reference not in methods:
        methods = [reference] + list(methods)
    cells = [{m: s.runs(m, ratio) for m in methods} for s in schedules]  # per schedule: method -> seed -> run
    for m in methods:
        missing = [s for s, c in zip(schedules, cells) if not c[m]]
        if len(missing) == len(schedules) or (m == reference and missing):
            raise ValueError(f'{missing[0].source}: no finished run of {[m]} at ratio {ratio} (methods there: '
                             f'{sorted({r["method"] for r in missing[0].results["runs"]})})')
    rows, paired = [], []
    for s, c in zip(schedules, cells):
        reference_s = _median_train_s(list(c[reference].values()))
        for m in methods:
            if c[m]:
                rows.append(_row(s, m, c[m], reference_s))
            if c[m] and m != reference:
                paired += _paired('vs_reference', s.epochs, m, c[m], c[reference])
    shortest = schedules[0]
    for s, c in zip(schedules[1:], cells[1:]):
        for m in methods:
            if c[m] and cells[0][m]:
                paired += _paired('vs_shortest', s.epochs, m, c[m], cells[0][m])
    return dict(ratio=ratio, reference=reference, methods=methods,
                dense={k: shortest.results['dense'][k] for k in SCORES},
                schedules=[dict(epochs=s.epochs, results=s.source) for s in schedules], rows=rows, paired=paired)


def _diff(d: Optional[dict]) -> str:
    return '' if d is None else format_paired(d)


def _find(result: dict, kind: str, epochs: int, method: str, metric: str) -> Optional[dict]:
    return next((d for d in result['paired'] if (d['kind'], d['epochs'], d['method'], d['metric']) ==
                 (kind, epochs, method, metric)), None)


def markdown(result: dict) -> str:
    ref = result['reference']
    lines = [f'At {result["ratio"]:g} of the dense FLOPs; mean +- std over the seeds; paired differences mean '
             f'[95 % t interval], * = the interval excludes 0; training: the median run trained in one attempt, '
             f'as a ratio to {ref} at the same schedule.', '',
             f'| epochs | method | seeds | clean mAP | mPC | rPC [%] | mPC - {ref} | clean - {ref} | training |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in result['rows']:
        e, m = r['epochs'], r['method']
        train = '' if r['train_s'] is None else f'{r["train_s"] / 60:.1f} min' + (
            '' if r['train_ratio'] is None else f' ({r["train_ratio"]:.2f}x)')
        cells = ' | '.join(format_mean_std(r[k]) for k in ('clean_map', 'mpc', 'rpc'))
        diffs = ' | '.join(_diff(_find(result, 'vs_reference', e, m, k)) for k in ('mpc', 'clean_map'))
        lines.append(f'| {e} | {r["label"]} | {len(r["seeds"])} | {cells} | {diffs} | {train} |')
    shortest, *longer = [s['epochs'] for s in result['schedules']]
    lines += ['', f'Each method at a longer schedule minus itself at {shortest} epochs, paired by seed:', '',
              '| method | ' + ' | '.join(f'{e} epochs: mPC | clean' for e in longer) + ' |',
              '|---|' + '---|---|' * len(longer)]
    for m in [m for m in result['methods'] if any(_find(result, 'vs_shortest', e, m, 'mpc') for e in longer)]:
        cells = [f'{_diff(_find(result, "vs_shortest", e, m, "mpc"))} | '
                 f'{_diff(_find(result, "vs_shortest", e, m, "clean_map"))}' for e in longer]
        lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot(result: dict, path: str) -> None:
    """mPC and clean mAP (mean +- std over the seeds) against the schedule length, one line per method, the dense
    start as a dashed line; and mPC against the median training time (the time-matched reading)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    epochs = [s['epochs'] for s in result['schedules']]
    for ax, key, title in zip(axes, ('mpc', 'clean_map'), ('mPC (corrupted test)', 'clean mAP')):
        for i, m in enumerate(result['methods']):
            rows = _method_rows(result, m)
            shift = 1 + 0.02 * (i - (len(result['methods']) - 1) / 2)  # side by side on the log axis
            ax.errorbar([r['epochs'] * shift for r in rows], [r[key]['mean'] for r in rows],
                        yerr=[r[key]['std'] or 0 for r in rows], capsize=3, marker='o', label=m)
        ax.axhline(result['dense'][key], color='k', linestyle='--', linewidth=1, label='dense start')
        ax.set_xscale('log')
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.minorticks_off()
        ax.set_xlabel('epochs per run (warm-up + pruning + fine-tune)')
        ax.set_ylabel(title)
        ax.set_title(f'at {result["ratio"]:g} of the dense FLOPs')
        ax.grid(alpha=0.3)
    for m in result['methods']:
        rows = [r for r in _method_rows(result, m) if r['train_s']]
        axes[2].errorbar([r['train_s'] / 60 for r in rows], [r['mpc']['mean'] for r in rows],
                         yerr=[r['mpc']['std'] or 0 for r in rows], capsize=3, marker='o', label=m)
        for r in rows:
            axes[2].annotate(f'{r["epochs"]} ep', (r['train_s'] / 60, r['mpc']['mean']), fontsize=7,
                             xytext=(4, -10), textcoords='offset points')
    axes[2].set_xlabel('median training time per run [min]')
    axes[2].set_ylabel('mPC (corrupted test)')
    axes[2].set_title('the time-matched reading')
    axes[2].grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def _method_rows(result: dict, method: str) -> List[dict]:
    return sorted((r for r in result['rows'] if r['method'] == method), key=lambda r: r['epochs'])


def write_schedule_comparison(folders: Dict[int, str], methods: List[str], reference: str, ratio: float,
                              out_dir: str) -> Dict[str, str]:
    """``out_dir/schedules.{json,md,png}`` from the tables of ``{epochs: results folder}``."""
    result = compare_schedules(load_schedules(folders), methods, reference, ratio)
    paths = {k: osp.join(out_dir, f'schedules.{k}') for k in ('json', 'md', 'png')}
    atomic_write_json(paths['json'], result)
    atomic_write_bytes(paths['md'], markdown(result).encode())
    plot(result, paths['png'])
    return paths
