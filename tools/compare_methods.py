"""Compare pruning methods: every (method, target FLOPs ratio, seed) of a matrix config from one dense checkpoint.

    python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_matrix.py --out work_dirs/compare_test
    python tools/compare_methods.py MATRIX --out work_dirs/compare_val --split val     # the search split
    python tools/compare_methods.py MATRIX --out DIR --methods adasap l2prune_sgd      # a subset
    python tools/compare_methods.py MATRIX --out DIR --ratios 0.25 1.0     # the runs at 0.25 and the controls
    python tools/compare_methods.py MATRIX --out DIR --table-only                      # rebuild the tables
    python tools/compare_methods.py MATRIX --out DIR --remeasure-latency   # time the finished runs again, idle
    python tools/compare_methods.py MATRIX --out DIR --estimate 6     # time 6 iterations per method, no runs
    python tools/compare_methods.py MATRIX --out DIR --launcher local --workers 2   # 2 processes share the runs
    python tools/compare_methods.py MATRIX --out DIR --launcher slurm --partition gpu  # one SLURM job per run
    python tools/compare_methods.py MATRIX --out DIR --launcher slurm --gpus-per-run 4  # each run: 4-GPU DDP job

Rerunning the same command continues: finished runs (OUT/runs/*/*/*/record.json) are skipped, an interrupted
run resumes from its last checkpoint and its evaluation from its finished sets. Two processes started with the
same command share the work: each passes over the runs the other holds. Writes OUT/results.json,
OUT/results.md, OUT/results_vs_flops.png, OUT/results_categories.png (and OUT/search_log.jsonl on a search
split).
"""
import os.path as osp

from mmengine.config import DictAction

import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.experiments import load_matrix, run_matrix
from mmdet_adasap.experiments.compare import table_only
from mmdet_adasap.experiments.launch import LAUNCHERS, local_workers, make_executor, submit_matrix
from mmdet_adasap.experiments.remeasure import remeasure_latency


def main(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('matrix', help='matrix config (configs/compare/*_matrix.py)')
    p.add_argument('--out', required=True, help='results folder (one split per folder)')
    p.add_argument('--split', default='test', help='a split of the matrix: test (report) or val (search)')
    p.add_argument('--methods', nargs='+', help='run only these methods of the table')
    p.add_argument('--ratios', nargs='+', type=float, help='run only the runs at these ratios (1.0: the controls)')
    p.add_argument('--table-only', action='store_true', help='rebuild the tables and plots from finished runs')
    p.add_argument('--remeasure-latency', action='store_true',
                   help='time the dense start and the finished runs again (run it when nothing else runs: runs '
                        'timed beside other runs are slowed), then rebuild the tables; keeps the in-run numbers')
    p.add_argument('--estimate', type=int, metavar='ITERS',
                   help='only estimate the matrix\'s wall time from ITERS training iterations per method')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override matrix settings, key=value')
    p.add_argument('--launcher', choices=LAUNCHERS, default='none',
                   help='none: this process; local: --workers processes sharing OUT; slurm: one job per run (submitit)')
    p.add_argument('--workers', type=int, default=2, help='local processes (--launcher local)')
    p.add_argument('--gpus-per-run', type=int, default=1,
                   help='GPUs of each run: its training is one DDP training on that many processes of one machine '
                        '(--launcher none, or slurm: a job holding that many GPUs)')
    p.add_argument('--partition', help='SLURM partition (--launcher slurm)')
    p.add_argument('--timeout-min', type=int, default=24 * 60, help='time limit of each job in minutes')
    p.add_argument('--slurm-options', nargs='+', action=DictAction, default={},
                   help='more sbatch options, key=value (e.g. account=ABC qos=normal)')
    args = p.parse_args(argv)
    matrix = load_matrix(args.matrix, args.cfg_options)
    if args.estimate:
        from mmdet_adasap.experiments.estimate import estimate
        estimate(matrix, args.split, args.out, args.estimate)
        return
    if args.table_only:
        paths = table_only(matrix, args.out, args.split)
    elif args.remeasure_latency:
        paths = remeasure_latency(matrix, args.out, args.split, methods=args.methods, ratios=args.ratios)
    elif args.launcher == 'local':
        if args.gpus_per_run != 1:
            raise ValueError(f'--gpus-per-run {args.gpus_per_run} with --launcher local: the local workers would '
                             'share the same GPUs; use --launcher none (one run at a time on them) or slurm')
        paths = local_workers(matrix, args.out, args.workers, osp.join(args.out, 'jobs'), args.split,
                              methods=args.methods, ratios=args.ratios)
    elif args.launcher == 'slurm':
        executor = make_executor('slurm', osp.join(args.out, 'jobs'), args.gpus_per_run, args.partition,
                                 args.timeout_min, **args.slurm_options)
        paths = submit_matrix(matrix, args.out, executor, args.split, methods=args.methods, ratios=args.ratios,
                              processes=args.gpus_per_run)
    else:
        paths = run_matrix(matrix, args.out, args.split, methods=args.methods, ratios=args.ratios,
                           processes=args.gpus_per_run)
    with open(paths['markdown']) as f:
        print(f.read())
    print('written: ' + ', '.join(paths.values()))


if __name__ == '__main__':
    run_tool(main)
