"""The main effects of the 2x2 phase ablation (warm-up adaptive / SGD x fine-tune ASAM / SGD), paired by seed.

The four arms are the runs whose records carry ``phases`` (the matrix's ``phases=`` method option, :mod:`.arms`)
with warm-up ``adaptive`` or ``sgd`` and fine-tune ``asam`` or ``sgd``, at one ratio and schedule. With ``AA``
= adaptive + ASAM, ``AS`` = adaptive + SGD, ``SA`` = SGD + ASAM, ``SS`` = SGD + SGD, per seed:

- warm-up effect: (AA + AS) / 2 - (SA + SS) / 2 (the adaptive warm-up over an SGD one, averaged over the
  fine-tunes);
- fine-tune effect: (AA + SA) / 2 - (AS + SS) / 2 (the ASAM fine-tune over an SGD one, averaged over the
  warm-ups);
- interaction: (AA - SA) - (AS - SS) (how much more the adaptive warm-up gives before an ASAM fine-tune than
  before an SGD one; 0: the two phases add up);

each as the mean over the seeds all four arms have, with a two-sided Student's t interval of that mean.
"""
import json
from typing import Dict, List, Optional, Sequence

from mmdet_adasap.analysis.stats import INTERVAL, format_paired, t_interval

WARMUPS, FINETUNES = ('adaptive', 'sgd'), ('asam', 'sgd')
EFFECTS = ('warmup', 'finetune', 'interaction')
EFFECT_LABELS = dict(warmup='warm-up: adaptive - SGD', finetune='fine-tune: ASAM - SGD',
                     interaction='interaction: (AA - SA) - (AS - SS)')
METRICS = (('mpc', 'mPC'), ('clean_map', 'clean mAP'))


def _contrasts(v: Dict[tuple, float]) -> Dict[str, float]:
    aa, as_, sa, ss = v['adaptive', 'asam'], v['adaptive', 'sgd'], v['sgd', 'asam'], v['sgd', 'sgd']
    return dict(warmup=(aa + as_) / 2 - (sa + ss) / 2, finetune=(aa + sa) / 2 - (as_ + ss) / 2,
                interaction=(aa - sa) - (as_ - ss))


def _groups(records: Sequence[dict]) -> Dict[tuple, Dict[tuple, Dict[int, dict]]]:
    """(ratio, schedule) -> (warm-up, fine-tune) -> seed -> record, for the 2x2 arms."""
    out = {}
    for rec in records:
        phases = rec.get('phases') or {}
        cell = (phases.get('warmup'), phases.get('finetune'))
        if cell[0] not in WARMUPS or cell[1] not in FINETUNES:
            continue
        key = (rec['ratio'], json.dumps(rec.get('schedule', 1), sort_keys=True))
        seeds = out.setdefault(key, {}).setdefault(cell, {})
        if rec['seed'] in seeds:
            raise ValueError(f'ablation: two runs of the arm warm-up {cell[0]!r} + fine-tune {cell[1]!r} at ratio '
                             f'{rec["ratio"]:g}, seed {rec["seed"]}: methods {seeds[rec["seed"]]["method"]!r} and '
                             f'{rec["method"]!r}; give each arm one method')
        seeds[rec['seed']] = rec
    return out


def ablation_effects(records: Sequence[dict], metrics: Sequence[str] = ('mpc', 'clean_map'),
                     confidence: float = 0.95) -> List[dict]:
    """The warm-up and fine-tune main effects and their interaction per (ratio, schedule) that has all four 2x2
    arms, on each metric: mean, std, n and the ``confidence`` t interval over the seeds all four arms have
    (``low`` / ``high`` None for one seed). Records of other runs are ignored."""
    out = []
    for (ratio, schedule), cells in _groups(records).items():
        if len(cells) < 4:
            continue
        methods = {f'{w}+{f}': next(iter(cells[w, f].values()))['method'] for w, f in cells}
        for metric in metrics:
            seeds = sorted(set.intersection(*(
                {s for s, r in cell.items() if r.get(metric) is not None} for cell in cells.values())))
            if not seeds:
                continue
            dropped = sorted(set().union(*(set(cell) for cell in cells.values())) - set(seeds))
            per_seed = [_contrasts({c: cells[c][s][metric] for c in cells}) for s in seeds]
            for effect in EFFECTS:
                what = f'ablation {effect} on {metric} at {ratio:g}'
                s, low, high = t_interval([p[effect] for p in per_seed], confidence, what)
                out.append(dict(ratio=ratio, schedule=json.loads(schedule), effect=effect, metric=metric,
                                mean=s.mean, std=s.std, n=s.n, low=low, high=high, confidence=confidence,
                                method=INTERVAL, seeds=seeds, dropped_seeds=dropped, arms=methods,
                                excludes_zero=bool(low is not None and (low > 0 or high < 0))))
    return out


def ablation_markdown(effects: Sequence[dict], labels: Optional[Dict[str, str]] = None) -> List[str]:
    """A markdown section of :func:`ablation_effects` (no lines when there is none); ``labels``: method -> label."""
    if not effects:
        return []
    conf = effects[0]['confidence']
    lines = ['## The phase ablation (warm-up x fine-tune)', '',
             'Main effects of the 2x2 arms, paired by seed: warm-up = (AA + AS)/2 - (SA + SS)/2, fine-tune = '
             '(AA + SA)/2 - (AS + SS)/2, interaction = (AA - SA) - (AS - SS), where the first letter is the warm-up '
             f'(A adaptive, S SGD) and the second the fine-tune (A ASAM, S SGD); mean [{conf:.0%} {INTERVAL} '
             'interval]; * = the interval excludes 0.', '']
    for key in dict.fromkeys((e['ratio'], json.dumps(e['schedule'], sort_keys=True)) for e in effects):
        group = [e for e in effects if (e['ratio'], json.dumps(e['schedule'], sort_keys=True)) == key]
        arms = ', '.join(f'{arm} = {(labels or {}).get(m, m)}' for arm, m in sorted(group[0]['arms'].items()))
        sched = '' if group[0]['schedule'] == 1 else f', schedule {group[0]["schedule"]}'
        lines += [f'Target {key[0]:g}{sched} ({arms}):', '', '| effect | seeds | ' +
                  ' | '.join(label for m, label in METRICS if any(e['metric'] == m for e in group)) + ' |',
                  '|---|---|' + '---|' * len({e['metric'] for e in group})]
        for effect in EFFECTS:
            cells = {e['metric']: e for e in group if e['effect'] == effect}
            n = max(c['n'] for c in cells.values())
            lines.append(f'| {EFFECT_LABELS[effect]} | {n} | ' + ' | '.join(
                format_paired(cells[m]) for m, _ in METRICS if m in cells) + ' |')
        dropped = sorted({s for e in group for s in e['dropped_seeds']})
        if dropped:
            lines += ['', f'Seed(s) {dropped} left out: not every arm has finished them.']
        lines.append('')
    return lines
