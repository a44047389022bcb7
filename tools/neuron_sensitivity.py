"""Per-neuron removal sensitivity and local sharpness of a checkpoint, against the neuron's importance rank.

    python tools/neuron_sensitivity.py configs/demo/ssd-r18mini_synthvoc_dense.py CKPT --out DIR
           [--batches 2] [--per-group 4] [--rho 0.05] [--samples 2] [--measures removal sharpness trace]

A neuron is one channel of a pruner group (filter, BN, coupled partners, consumers' input columns). Run it on
the dense model and on each method's warm-up checkpoint (a run's epoch_<warmup.end>.pth). The loss is measured
on the config's val loader: point it at the val split (the demo configs validate on test), e.g.
``--cfg-options val_dataloader.dataset.ann_file=VOC2007/ImageSets/Main/val.txt``. Writes
DIR/neuron_probe.json (one row per probed neuron and a summary) and DIR/neuron_probe.png.
"""
import json

from mmengine.config import DictAction

import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.analysis.probe import MEASURES, probe


def main(argv=None):
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='default: the config\'s initialisation')
    p.add_argument('--out', required=True)
    p.add_argument('--batches', type=int, default=2, help='fixed val batches the loss is measured on')
    p.add_argument('--per-group', type=int, default=4, help='neurons per group, spread over its importance order')
    p.add_argument('--rho', type=float, default=0.05, help='radius of the worst-case perturbation')
    p.add_argument('--samples', type=int, default=2, help='Hutchinson samples per neuron')
    p.add_argument('--measures', nargs='+', default=list(MEASURES), choices=MEASURES)
    p.add_argument('--importance', default='l2', help='the ranking criterion (l2, taylor needs gradients: l2)')
    p.add_argument('--label')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    res = probe(args.config, args.checkpoint, args.out, args.batches, args.per_group, args.rho, args.samples,
                args.measures, args.cfg_options, args.importance, args.label)
    print(json.dumps(res['summary'], indent=1))
    print(f'written: {args.out}/neuron_probe.json, {args.out}/neuron_probe.png')


if __name__ == '__main__':
    run_tool(main)
