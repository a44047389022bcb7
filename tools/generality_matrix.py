"""Which mmdet detectors prune: prune, export, reload and test each one, and print the table of docs/pruning.md.

    python tools/generality_matrix.py                 # every detector of mmdet_adasap.benchmarks.generality
    python tools/generality_matrix.py --only FCOS ATSS --ratio 0.3

Random weights, no downloads, small square inputs (see ``DETECTORS``); one intra-op thread so that timings
from a shared machine stay comparable. A detector that fails gets its error in the table.
"""
import argparse
import sys

import torch
from mmdet.utils import register_all_modules
from tqdm import tqdm

import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.benchmarks.generality import DETECTORS, markdown_table, matrix_row


def main(argv=None):
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--only', nargs='+', default=(), help='substrings of detector names to run')
    p.add_argument('--ratio', type=float, default=0.5, help='FLOPs ratio to prune to (a row that names its own, e.g. TOOD with its head left alone, keeps it)')
    p.add_argument('--round-to', type=int, default=8)
    args = p.parse_args(argv)
    names = [n for n in DETECTORS if not args.only or any(s.lower() in n.lower() for s in args.only)]
    if not names:
        raise SystemExit(f'error: --only {args.only} matches none of {list(DETECTORS)}')
    register_all_modules()
    torch.set_num_threads(1)
    rows = [matrix_row(n, args.ratio, args.round_to) for n in tqdm(names, desc='detectors', file=sys.stderr)]
    print(markdown_table(rows))
    return 1 if any(r.error for r in rows) else 0


if __name__ == '__main__':
    run_tool(main)
