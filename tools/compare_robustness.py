"""Several robustness results (e.g. dense, L2-pruned, AdaSAP) in one table and two plots.

    python tools/compare_robustness.py dense/robustness.json adasap/robustness.json --out DIR [--labels a b]
Writes DIR/comparison.md, DIR/comparison_bars.png, DIR/comparison_severity.png.
"""

from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.robustness.report import write_comparison


def main():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('results', nargs='+', help='robustness.json files from tools/test_robustness.py')
    p.add_argument('--out', required=True)
    p.add_argument('--labels', nargs='+', help='one name per result (default: the labels stored in them)')
    args = p.parse_args()
    paths = write_comparison(args.results, args.out, args.labels)
    with open(paths['markdown']) as f:
        print(f.read())


if __name__ == '__main__':
    run_tool(main)
