"""Convert a VOC-layout split (e.g. the synthetic set) to a COCO json for mmdet's CocoDataset / CocoMetric.

    python tools/voc_to_coco.py data/synthetic_voc/VOCdevkit data/synthetic_voc/coco_test2007.json --split test
A config then reads it with ``dict(type='CocoDataset', data_root=VOCDEVKIT, ann_file=JSON,
data_prefix=dict(img=''), metainfo=dict(classes=...))`` and ``dict(type='CocoMetric', ann_file=JSON)``.
"""
import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.robustness.voc_coco import DIFFICULT_MODES, voc_to_coco


def parse_args():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('voc_root', help='VOCdevkit folder (holds VOC2007/...)')
    p.add_argument('out_json')
    p.add_argument('--split', default='test', help='ImageSets/Main/<split>.txt (default: test)')
    p.add_argument('--years', nargs='+', default=['VOC2007'])
    p.add_argument('--classes', nargs='+', help='class names in order (default: the synthetic set\'s)')
    p.add_argument('--difficult', choices=DIFFICULT_MODES, default='crowd',
                   help='difficult objects: iscrowd=1 (default, as mmdet\'s converter), keep, or drop')
    return p.parse_args()


def main():
    args = parse_args()
    coco = voc_to_coco(args.voc_root, args.out_json, args.split, args.years, args.classes, args.difficult)
    print(f'{len(coco["images"])} images, {len(coco["annotations"])} objects, '
          f'{len(coco["categories"])} categories -> {args.out_json}')


if __name__ == '__main__':
    run_tool(main)
