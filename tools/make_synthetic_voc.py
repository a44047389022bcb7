"""Write the synthetic Pascal-VOC-layout data set (VOCdevkit/VOC2007, VOC2012).

    python tools/make_synthetic_voc.py data/synthetic_voc [--trainval-2007 600 --test-2007 300 ...]
"""
import argparse

from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.datasets import SyntheticVOCSpec, make_synthetic_voc


def parse_args():
    d = SyntheticVOCSpec()
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir', help='folder that will contain VOCdevkit/')
    for year in ('2007', '2012'):
        p.add_argument(f'--trainval-{year}', type=int, default=d.trainval[f'VOC{year}'])
        p.add_argument(f'--test-{year}', type=int, default=d.test[f'VOC{year}'])
    p.add_argument('--min-side', type=int, default=d.min_side)
    p.add_argument('--max-side', type=int, default=d.max_side)
    p.add_argument('--max-objects', type=int, default=d.max_objects)
    p.add_argument('--seed', type=int, default=d.seed)
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--overwrite', action='store_true', help='replace an existing VOCdevkit')
    return p.parse_args()


def main():
    a = parse_args()
    spec = SyntheticVOCSpec(trainval={'VOC2007': a.trainval_2007, 'VOC2012': a.trainval_2012},
                            test={'VOC2007': a.test_2007, 'VOC2012': a.test_2012}, min_side=a.min_side,
                            max_side=a.max_side, max_objects=a.max_objects, seed=a.seed)
    devkit = make_synthetic_voc(a.out_dir, spec, overwrite=a.overwrite, workers=a.workers)
    print(f'synthetic VOC written to {devkit}')


if __name__ == '__main__':
    run_tool(main)
