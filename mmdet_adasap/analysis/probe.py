"""The mechanism probe of a detector checkpoint: every measure of :mod:`.sensitivity` for a budget of neurons per
pruner group, against the neuron's importance rank, on fixed batches of the config's val set.

Run it on the dense model and on each method's warm-up checkpoint (``epoch_<warmup.end>.pth`` of a run); the
paper's claim predicts that after the adaptive warm-up the low-rank neurons (the ones pruned first) are
cheaper to remove and flatter than after a uniform SAM or an SGD warm-up.
"""
import io
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.runner import Runner

from mmdet_adasap.apis import build_detector, load_config, trace_shape
from mmdet_adasap.pruning import build_channel_groups, build_importance
from mmdet_adasap.utils.io import atomic_write_bytes, atomic_write_json
from .sensitivity import (hessian_trace, importance_ranks, removal_sensitivity, spread_channels,
                          worst_case_sharpness)
from .stats import t_interval

PROBE_SCHEMA = 'mmdet_adasap.neuron_probe/1'
MEASURES = ('removal', 'sharpness', 'trace')


def boxes_follow_the_image(pipeline: list) -> list:
    """The pipeline with ``LoadAnnotations`` moved right after the image is loaded.

    mmdet's test pipelines load the annotations *after* ``Resize``, so that the boxes stay in the original
    image's coordinates for the evaluator; a loss on such batches compares predictions at the network's input
    scale with boxes at another one (on the demo's val batches: 13.6 instead of 4.5). Loaded first, the boxes
    go through every geometric transform with the image, as in training."""
    ann = [t for t in pipeline if t['type'] == 'LoadAnnotations']
    if len(ann) != 1:
        raise ValueError(f'the loss needs boxes: expected one LoadAnnotations in the pipeline, got '
                         f'{[t["type"] for t in pipeline]}')
    rest = [t for t in pipeline if t['type'] != 'LoadAnnotations']
    first = next((i + 1 for i, t in enumerate(rest) if t['type'].startswith('LoadImage')), 0)
    return rest[:first] + ann + rest[first:]


def fixed_batches(cfg, model, num_batches: int, split: str = 'val_dataloader'):
    """The first ``num_batches`` batches of the config's (unshuffled) ``split`` loader, preprocessed once, with
    the boxes transformed with the image (:func:`boxes_follow_the_image`)."""
    loader_cfg = dict(cfg[split], persistent_workers=False, num_workers=0)
    loader_cfg['dataset'] = dict(loader_cfg['dataset'],
                                 pipeline=boxes_follow_the_image(loader_cfg['dataset']['pipeline']))
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = []
    for batch in loader:
        batches.append(model.data_preprocessor(batch, training=True))
        if len(batches) == num_batches:
            break
    if not batches:
        raise ValueError(f'the {split} of the config yields no batch')
    return batches


def detector_loss(model, batches):
    """Mean total training loss of the detector on the fixed batches (eval mode: BN statistics fixed)."""
    def loss():
        total = 0
        for data in batches:
            total = total + model.parse_losses(model.loss(data['inputs'], data['data_samples']))[0]
        return total / len(batches)
    return loss


def probe(config: str, checkpoint: Optional[str], out_dir: str, num_batches: int = 2, per_group: int = 4,
          rho: float = 0.05, samples: int = 2, measures: Sequence[str] = MEASURES,
          cfg_options: Optional[dict] = None, importance: str = 'l2', label: Optional[str] = None) -> dict:
    """Measure, write ``out_dir/neuron_probe.json`` and ``neuron_probe.png``; returns the result."""
    unknown = set(measures) - set(MEASURES)
    if unknown:
        raise ValueError(f'unknown measure(s) {sorted(unknown)}; choose from {MEASURES}')
    cfg = load_config(config, cfg_options)
    model, _ = build_detector(cfg, checkpoint)  # FileNotFoundError naming a missing checkpoint
    groups = build_channel_groups(model, trace_shape(cfg))
    neurons = groups.neuron_groups()
    scores = build_importance(importance)(groups)
    ranks = importance_ranks(neurons, scores)
    picks = spread_channels(ranks, per_group)
    loss = detector_loss(model, fixed_batches(cfg, model, num_batches))
    fns = dict(removal=lambda: removal_sensitivity(neurons, loss, picks),
               sharpness=lambda: worst_case_sharpness(neurons, loss, rho, picks),
               trace=lambda: hessian_trace(neurons, loss, samples, channels=picks))
    values = {m: fns[m]() for m in measures}
    total = sum(n.num_channels for n in neurons)
    rows = [dict(group=n.name, channel=c, importance=float(scores[n.name][c]), rank=int(ranks[n.name][c]),
                 rank_fraction=int(ranks[n.name][c]) / max(1, total - 1), **{m: values[m][n.name][c] for m in values})
            for n in neurons for c in picks[n.name]]
    result = dict(schema=PROBE_SCHEMA, label=label or osp.basename(checkpoint or 'init'), config=config,
                  checkpoint=checkpoint, importance=importance, rho=rho, hutchinson_samples=samples,
                  batches=num_batches, neurons=total, rows=rows, summary=summarize_probe(rows, values))
    atomic_write_json(osp.join(out_dir, 'neuron_probe.json'), result)
    plot_probe(result, osp.join(out_dir, 'neuron_probe.png'))
    return result


def _halves(rows, measure: str, bottom: float):
    """The measure's values over the ``bottom`` fraction of the importance order, and over the rest."""
    return ([r[measure] for r in rows if r['rank_fraction'] < bottom],
            [r[measure] for r in rows if r['rank_fraction'] >= bottom])


def summarize_probe(rows, values, bottom: float = 0.5) -> Dict[str, dict]:
    """Per measure: the mean over the ``bottom`` fraction of the importance order (pruned first at that ratio)
    and over the rest, and the Spearman correlation with the rank."""
    from scipy.stats import spearmanr  # scipy: optional and heavy, only the summary needs it
    out = {}
    for m in values:
        low, high = _halves(rows, m, bottom)
        rho = spearmanr([r['rank'] for r in rows], [r[m] for r in rows]).statistic if len(rows) > 2 else None
        out[m] = dict(mean_low_rank=sum(low) / len(low) if low else None,
                      mean_high_rank=sum(high) / len(high) if high else None,
                      spearman_vs_rank=None if rho is None or rho != rho else float(rho), bottom_fraction=bottom)
    return out


def compare_probes(results: Sequence[dict], bottom: float = 0.5, confidence: float = 0.95) -> str:
    """A markdown table of several probes (a dense model and each method's warm-up end): per measure, the mean
    over the neurons in the ``bottom`` fraction of the importance order (pruned first) and over the rest, each
    with a Student's t interval over the probed neurons, and the Spearman correlation with the rank."""

    def cell(values, what):
        if not values:
            return '-'
        s, low, high = t_interval(values, confidence, what)
        return f'{s.mean:.4g}' + ('' if low is None else f' [{low:.4g}, {high:.4g}]') + f' (n={s.n})'

    lines = [f'| checkpoint | measure | bottom {bottom:g} of the order: mean [{confidence:.0%} t] | the rest | '
             'Spearman vs rank |', '|---|---|---|---|---|']
    for r in results:
        if r.get('schema') != PROBE_SCHEMA:
            raise ValueError(f'{r.get("label")!r} is not a {PROBE_SCHEMA} result (schema {r.get("schema")!r})')
        for m in (m for m in MEASURES if m in r['rows'][0]):
            low, high = _halves(r['rows'], m, bottom)
            rho = r['summary'][m]['spearman_vs_rank']
            lines.append(f"| {r['label']} | {m} | {cell(low, m)} | {cell(high, m)} | "
                         f"{'-' if rho is None else f'{rho:+.2f}'} |")
    return '\n'.join(lines) + '\n'


def plot_probe(result: dict, path: str) -> None:
    import matplotlib  # optional plotting dependency, loaded only to draw
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional plotting dependency
    measures = [m for m in MEASURES if m in result['summary']]
    titles = dict(removal='removal sensitivity  L(masked) - L', sharpness=f'worst-case sharpness (rho={result["rho"]})',
                  trace='Hessian block trace (Hutchinson)')
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), squeeze=False)
    for ax, m in zip(axes[0], measures):
        ax.scatter([r['rank_fraction'] for r in result['rows']], [r[m] for r in result['rows']], s=10, alpha=0.7)
        ax.set_xlabel('importance rank (0 = pruned first)')
        ax.set_title(titles[m], fontsize=9)
        ax.axvline(result['summary'][m]['bottom_fraction'], color='grey', lw=0.8, ls='--')
        ax.grid(alpha=0.3)
    fig.suptitle(result['label'], fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)
