"""The demo (`make demo`): one seed of the method comparison on the demo detector, end to end on a CPU.

    synthetic VOC (if absent) -> the latency table AdaSAP_L needs (if absent) -> the dense start (the
    comparison's committed checkpoint, or with --train-dense the dense demo SSD trained here, its last epoch;
    nothing is chosen on test) -> from that one checkpoint: L2 pruning + SGD and AdaSAP to 50 % of the dense
    FLOPs, AdaSAP_L to 60 % of the dense latency -> clean and corrupted evaluation -> one table.

    python tools/demo.py [--out work_dirs/demo] [--full-voc-c] [--train-dense]

The runs go through mmdet_adasap.experiments (configs/demo/ssd-r18mini_synthvoc_demo_matrix.py): rerunning
continues where it stopped (finished runs are kept, an interrupted training resumes). One seed is a
demonstration; docs/results.md has the multi-seed answer.
"""
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine's import; nothing to act on
# mmengine's Visualizer is a process-wide singleton: every Runner after the first (one per run) warns about it
warnings.filterwarnings('ignore', message='.*instance named of visualizer has been created')

import argparse  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import os.path as osp  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from mmdet_adasap.apis import ToolParser, run_tool  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MATRIX = 'configs/demo/ssd-r18mini_synthvoc_demo_matrix.py'
REMOVED = {'--work-dir': 'use --out DIR (the demo writes into one folder, default work_dirs/demo)',
           '--baselines': 'the demo is a matrix config now: add methods to configs/demo/ssd-r18mini_synthvoc_demo_matrix.py '
                          'or run tools/compare_methods.py with a matrix of your own',
           '--retrain': 'delete the run\'s folder under work_dirs/demo/ (or `make clean-demo`) to redo it'}
FULL_VOC_C = {'evaluation.corruptions': 'benchmark', 'evaluation.severities': [1, 2, 3, 4, 5]}
# the dense start trained here instead of the committed one: the shipped 22-epoch dense config, its last epoch
TRAIN_DENSE = {'dense.config': 'configs/demo/ssd-r18mini_synthvoc_dense.py', 'dense.checkpoint': None}


def build_table(config: str, path: str) -> None:
    """The batch-1, 1-thread CPU latency table of the dense ``config`` the matrix's AdaSAP_L run loads
    (tools/build_latency_table.py)."""
    proc = subprocess.run([sys.executable, 'tools/build_latency_table.py', config,
                           '--input-size', '256', '--batch', '1', '--threads', '1', '--out', path], cwd=REPO,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'), capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stdout[-3000:] + proc.stderr[-3000:] + f'\nerror: building the latency table {path} failed')
    print('\n'.join(proc.stdout.strip().split('\n')[-2:]))  # where it went, build time, calibration errors


def ensure_data() -> None:
    if osp.isdir(osp.join(REPO, 'data/synthetic_voc/VOCdevkit')):
        print('reusing data/synthetic_voc/VOCdevkit')
        return
    from mmdet_adasap.datasets import make_synthetic_voc
    make_synthetic_voc(osp.join(REPO, 'data/synthetic_voc'), workers=os.cpu_count() or 1)


def main():
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', help='results folder (default: work_dirs/demo, work_dirs/demo_full_voc_c)')
    p.add_argument('--full-voc-c', action='store_true',
                   help='all 15 benchmark corruptions x 5 severities (default: 4 corruptions at severity 3)')
    p.add_argument('--train-dense', action='store_true',
                   help='train the dense start here (configs/demo/ssd-r18mini_synthvoc_dense.py, ~10 min on 2 cores) '
                        'instead of starting from the comparison\'s committed docs/results/demo/dense_start.pth')
    args, rest = p.parse_known_args()
    for arg in rest:
        if arg.split('=')[0] in REMOVED:
            p.error(f'{arg.split("=")[0]}: {REMOVED[arg.split("=")[0]]}')
    if rest:
        p.error(f'unrecognized arguments: {" ".join(rest)}')
    os.chdir(REPO)  # configs use repo-relative paths
    from mmdet_adasap.experiments import load_matrix
    from mmdet_adasap.experiments.demo import old_layout, run_demo
    out = args.out or ('work_dirs/demo' + '_train_dense' * args.train_dense + '_full_voc_c' * args.full_voc_c)
    stale = old_layout('work_dirs')
    if stale:
        print('not used by this demo, written by an older one (delete them, or `make clean-demo`): ' + ', '.join(stale))
    start = time.perf_counter()
    matrix = load_matrix(MATRIX, {**(FULL_VOC_C if args.full_voc_c else {}),
                                  **(TRAIN_DENSE if args.train_dense else {})})
    try:
        summary = run_demo(matrix, out, functools.partial(build_table, matrix.dense_config), ensure_data)
    except (ValueError, FileNotFoundError) as e:
        raise type(e)(f'{e} (to start the demo over: `make clean-demo`, or --out another folder)') from e
    total = time.perf_counter() - start
    print('\n' + summary['table'])
    ev = matrix.evaluation
    print(f'\nmAP: VOC07 11-point AP50 in %, 300 synthetic test images; mPC / rPC over {ev["corruptions"]} at '
          f'severities {ev["severities"]}; latency: median of {ev["latency"]["repeats"]} batch-1 runs on '
          f'{ev["latency"]["threads"]} CPU thread, interleaved with the dense model.')
    print(f'every run starts from {summary["dense_checkpoint"]} (the dense row).')
    print('wall time: ' + '; '.join(f'{k} {v / 60:.1f} min' for k, v in summary['walls'].items())
          + f'; total {total / 60:.1f} min')
    print('per run: ' + '; '.join(f'{m} {w["total"] / 60:.1f} min' for m, w in summary['runs'].items()))
    print('written: ' + ', '.join(summary['paths'].values()))
    print('One seed is a demonstration, not evidence: the multi-seed comparison is in docs/results.md '
          '(python tools/compare_methods.py configs/compare/...).')


if __name__ == '__main__':
    run_tool(main)
