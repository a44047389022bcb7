"""Compare the same methods trained with schedules of different lengths, from the tables of their matrices.

    python tools/compare_schedules.py 6=docs/results/ablation25 24=docs/results/schedule4x --ratio 0.25 \
        --methods l2prune_sgd sam_asam adasap --reference l2prune_sgd --out docs/results/schedule4x/schedules
Each EPOCHS=FOLDER is a matrix's results folder (its results.json) whose runs train EPOCHS epochs each; the
matrices must share the dense start, split, corruptions and severities. Writes OUT/schedules.{md,json,png}.
"""
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.experiments.schedules import write_schedule_comparison


def _schedule(text: str):
    epochs, sep, folder = text.partition('=')
    if not sep or not epochs.isdigit() or not folder:
        raise ValueError(f'schedule {text!r}: write EPOCHS=FOLDER, e.g. 24=docs/results/schedule4x')
    return int(epochs), folder


def main():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('schedules', nargs='+', help='EPOCHS=FOLDER, one per schedule length')
    p.add_argument('--ratio', type=float, required=True, help='the FLOPs ratio of the runs to compare')
    p.add_argument('--methods', nargs='+', required=True,
                   help='method names of the matrices\' method tables (one measured at some schedules only: rows '
                        'there, no change from the shortest)')
    p.add_argument('--reference', required=True, help='the method every other one is paired with')
    p.add_argument('--out', required=True)
    args = p.parse_args()
    folders = dict(_schedule(s) for s in args.schedules)
    paths = write_schedule_comparison(folders, args.methods, args.reference, args.ratio, args.out)
    with open(paths['md']) as f:
        print(f.read())


if __name__ == '__main__':
    run_tool(main)
