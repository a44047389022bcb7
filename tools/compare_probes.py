"""Compare mechanism probes (tools/neuron_sensitivity.py outputs) of several checkpoints in one markdown table.

    python tools/compare_probes.py work_dirs/probe/dense work_dirs/probe/adasap_warmup ... [--out probes.md]

Per measure: the mean over the neurons pruned first (the bottom half of each checkpoint's importance order) and
over the rest, each with a 95 % Student's t interval over the probed neurons, and the Spearman correlation with
the rank.
"""
import json
import os.path as osp
import sys

from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.analysis.probe import compare_probes


def main(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('dirs', nargs='+', help='folders holding a neuron_probe.json')
    p.add_argument('--bottom', type=float, default=0.5, help='fraction of the importance order pruned first')
    p.add_argument('--out', help='also write the table here')
    args = p.parse_args(argv)
    results = []
    for d in args.dirs:
        path = osp.join(d, 'neuron_probe.json')
        if not osp.isfile(path):
            sys.exit(f'error: {path} does not exist; run tools/neuron_sensitivity.py CONFIG CKPT --out {d}')
        with open(path) as f:
            results.append(json.load(f))
    table = compare_probes(results, args.bottom)
    print(table, end='')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)


if __name__ == '__main__':
    run_tool(main)
