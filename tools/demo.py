"""The main job on the shipped synthetic data, end to end on a CPU:

    generate data (if absent) -> train the dense demo detector -> AdaSAP to 50% of its FLOPs (adaptive warm-up,
    pruning, uniform-ASAM fine-tune) and, next to it, the key baseline: L2 pruning with plain SGD on the same
    schedule -> export the physically smaller detectors -> evaluate dense and pruned on clean and corrupted test
    images -> print a table (params, FLOPs, CPU latency, clean mAP, mPC, rPC) and write the plots.

    python tools/demo.py [--work-dir work_dirs] [--full-voc-c] [--baselines] [--retrain]

Every finished step is reused on rerun (an interrupted training resumes, an interrupted evaluation continues
with the sets it has not finished). The corrupted evaluation defaults to one corruption per category at
severity 3; ``--full-voc-c`` runs the whole benchmark (15 corruptions x 5 severities, ~25x longer).
``--baselines`` adds the paper's other comparison on the same schedule: a uniform SAM warm-up + ASAM fine-tune
(~5 min more). One run per method is a demonstration, not evidence: tools/compare_methods.py is the instrument.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DENSE_CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
METHODS = [  # (work dir / report key, label, config); the first two always run, the rest with --baselines
    ('adasap', 'AdaSAP, 50% FLOPs', osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py')),
    ('l2prune_sgd', 'L2 pruning + SGD, 50% FLOPs',
     osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py')),
    ('sam_asam', 'SAM warm-up + ASAM, 50% FLOPs',
     osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py')),
]
PRUNED_CONFIG = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')
DATA_ROOT = osp.join(REPO, 'data/synthetic_voc')
QUICK_CORRUPTIONS = ['gaussian_noise', 'motion_blur', 'snow', 'contrast']  # one per category
QUICK_SEVERITIES = [3]
STEPS = 6


def step(n, title):
    print(f'\n=== {n}/{STEPS} {title} ===', flush=True)


def ensure_data():
    step(1, 'synthetic VOC data')
    if osp.isdir(osp.join(DATA_ROOT, 'VOCdevkit')):
        print(f'reusing {DATA_ROOT}/VOCdevkit')
        return
    from mmdet_adasap.datasets import make_synthetic_voc
    make_synthetic_voc(DATA_ROOT, workers=os.cpu_count() or 1)


def train(config, work_dir, done_file, retrain, extra=()):
    """Train through tools/train.py (the user's path); resume a partial run, reuse a finished one."""
    if osp.isfile(osp.join(work_dir, done_file)) and not retrain:
        print(f'reusing finished run in {work_dir}')
        return None
    cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work_dir, *extra]
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')) and not retrain:
        cmd.append('--resume')
        print('resuming the interrupted run')
    start = time.time()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.time() - start


def final_checkpoint_name(config):
    from mmengine.config import Config
    return f'epoch_{Config.fromfile(config).train_cfg.max_epochs}.pth'


def best_checkpoint(work_dir):
    best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
    if best:
        return best[-1]
    epochs = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')), key=osp.getmtime)
    if not epochs:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return epochs[-1]


def measure_cost(dense_ckpt, pruned_ckpt, out_dir):
    """Params, FLOPs and batch-1 CPU latency (1 thread, interleaved runs) through tools/prune_report.py."""
    report = osp.join(out_dir, 'report.json')
    if not osp.isfile(report):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/prune_report.py'), DENSE_CONFIG, '--checkpoint',
                        dense_ckpt, '--pruned', pruned_ckpt, '--threads', '1', '--repeats', '30', '--out-dir',
                        out_dir, '--batches', '1', '--thread-counts', '1'],  # deployed rows: ORT, batch 1, 1 thread
                       cwd=REPO, check=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    with open(report) as f:
        return json.load(f)


def evaluate(config, checkpoint, out_dir, label, corruptions, severities, verbose):
    """``verbose``: log every finished set (the full benchmark takes ~25 min per model on a 2-core CPU)."""
    from mmdet_adasap.robustness import evaluate_robustness
    from mmdet_adasap.robustness.corruptions import resolve_corruptions
    print(f'{label}: clean + {len(resolve_corruptions(corruptions))} corruption(s) x severities {list(severities)} -> {out_dir}',
          flush=True)
    return evaluate_robustness(config, checkpoint, out_dir, corruptions=corruptions, severities=severities,
                               label=label, cfg_options=dict(log_level='INFO' if verbose else 'WARNING'))


def table(rows) -> str:
    dense = rows[0]
    lines = ['| model | params | FLOPs (conv+linear MACs) | CPU latency, batch 1 | clean mAP (P) | mPC | rPC |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        rel = '' if r is dense else ' ({:.2f}x)'
        lines.append('| {} | {:.3f} M{} | {:.3f} G{} | {:.1f} ms{} | {:.1f} | {:.1f} | {:.1f} % |'.format(
            r['model'], r['params'] / 1e6, rel.format(r['params'] / dense['params']),
            r['flops'] / 1e9, rel.format(r['flops'] / dense['flops']),
            r['latency_ms'], rel.format(r['latency_ms'] / dense['latency_ms']),
            100 * r['P'], 100 * r['mPC'], 100 * r['rPC']))
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs'))
    p.add_argument('--full-voc-c', action='store_true',
                   help='all 15 benchmark corruptions x 5 severities (default: 4 corruptions at severity 3)')
    p.add_argument('--baselines', action='store_true',
                   help='also run the SAM warm-up + ASAM baseline (same schedule; L2 pruning + SGD always runs)')
    p.add_argument('--retrain', action='store_true', help='train again even if finished runs exist')
    args = p.parse_args()
    os.chdir(REPO)  # configs use repo-relative data roots
    import mmdet_adasap  # noqa: F401
    from mmdet_adasap.robustness import write_comparison

    start, timings = time.time(), {}
    ensure_data()

    step(2, 'train the dense demo SSD')
    dense_dir = osp.join(args.work_dir, 'demo_dense')
    timings['train_dense_s'] = train(DENSE_CONFIG, dense_dir, final_checkpoint_name(DENSE_CONFIG), args.retrain)
    dense_ckpt = best_checkpoint(dense_dir)
    load_from = osp.join(dense_dir, final_checkpoint_name(DENSE_CONFIG))  # pruning starts from the trained model

    methods = METHODS if args.baselines else METHODS[:2]
    pruned = {}
    for key, label, config in methods:
        step(3, f'{label}: warm-up -> pruning -> fine-tune -> export ({osp.relpath(config, REPO)})')
        run_dir = osp.join(args.work_dir, f'demo_{key}')
        timings[f'train_{key}_s'] = train(config, run_dir, 'pruned.pth', args.retrain,
                                          extra=['--cfg-options', f'load_from={load_from}'])
        pruned[key] = osp.join(run_dir, 'pruned.pth')

    step(4, 'params, FLOPs and CPU latency: dense vs pruned')
    report_dir = osp.join(args.work_dir, 'demo_report')
    costs = {key: measure_cost(dense_ckpt, pruned[key], osp.join(report_dir, 'cost', key)) for key, _, _ in methods}

    step(5, 'clean and corrupted evaluation (VOC-C)')
    corruptions, severities = ('benchmark', [1, 2, 3, 4, 5]) if args.full_voc_c else (QUICK_CORRUPTIONS,
                                                                                       QUICK_SEVERITIES)
    t = time.time()
    eval_dir = osp.join(report_dir, 'robustness_full' if args.full_voc_c else 'robustness_quick')
    results = {'dense': evaluate(DENSE_CONFIG, dense_ckpt, osp.join(eval_dir, 'dense'), 'dense', corruptions,
                                 severities, args.full_voc_c)}
    for key, label, _ in methods:
        results[key] = evaluate(PRUNED_CONFIG, pruned[key], osp.join(eval_dir, key), label, corruptions, severities,
                                args.full_voc_c)
    timings['evaluate_s'] = time.time() - t
    plots = write_comparison([osp.join(eval_dir, key, 'robustness.json') for key in results], report_dir,
                             labels=['dense'] + [label for _, label, _ in methods])

    step(6, 'summary')
    first = costs[methods[0][0]]
    rows = [dict(model='dense demo SSD', params=first['dense']['params'], flops=first['dense']['flops'],
                 latency_ms=first['dense']['latency_ms'], **_scores(results['dense']))]
    for key, label, _ in methods:
        c = costs[key]  # each latency relative to the dense model measured in the same interleaved run
        rows.append(dict(model=label, params=c['pruned']['params'], flops=c['pruned']['flops'],
                         latency_ms=first['dense']['latency_ms'] * c['pruned']['latency_ms'] / c['dense']['latency_ms'],
                         **_scores(results[key])))
    text = table(rows)
    subset = 'all 15 benchmark corruptions x severities 1-5' if args.full_voc_c else \
        f'{", ".join(QUICK_CORRUPTIONS)} at severity {QUICK_SEVERITIES[0]} (--full-voc-c for the whole benchmark)'
    total = time.time() - start
    summary = dict(rows=rows, corruptions=subset, dense_checkpoint=dense_ckpt, pruned_checkpoints=pruned,
                   latency=f'median of 30 batch-1 runs, 1 CPU thread, input {first["input"]}',
                   timings={k: None if v is None else round(v, 1) for k, v in timings.items()},
                   total_seconds=round(total, 1), plots=plots)
    with open(osp.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(osp.join(report_dir, 'summary.md'), 'w') as f:
        f.write(text + '\n')
    print(text)
    print(f'\nmAP: VOC07 11-point AP50 in %, 300 test images; mPC / rPC over {subset}.')
    print(f'latency: {summary["latency"]}.')
    trained = ', '.join(f'{k[:-2]} {v / 60:.1f} min' for k, v in timings.items() if v is not None)
    print(f'wall time {total / 60:.1f} min ({trained or "all training reused"})')
    print(f'plots: {plots["corruption_plot"]}, {plots["severity_plot"]}, {report_dir}/cost/*/report.png')
    print(f'summary: {osp.join(args.work_dir, "demo_summary.json")}')


def _scores(result):
    s = result['summary']
    return dict(P=s['P'], mPC=s['mPC'], rPC=s['rPC'])


if __name__ == '__main__':
    main()
