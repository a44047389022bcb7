"""Render the corrupted copies of a VOC split or a COCO-format set once, to disk (VOC-C / Pascal-C protocol).

Corruptions are applied to the BGR image as mmcv loads it, at native resolution, before any resize. Each
(image, corruption, severity) is seeded by the image's dataset id (VOC: its id; COCO: the json's image id), as
the on-the-fly transform seeds it, so a cached image equals the on-the-fly one and reruns give the same files;
files already present are skipped, so an interrupted run is resumed by repeating the command.

    python tools/make_voc_c.py data/synthetic_voc/VOCdevkit data/synthetic_voc_c --workers 2
    # a COCO-format set: DATA_ROOT is the folder the json's file_name is relative to (data_root + data_prefix.img)
    python tools/make_voc_c.py data/synthetic_voc/VOCdevkit data/synthetic_coco_c \
        --coco-ann data/synthetic_coco/annotations/instances_test2007.json --workers 2
"""
import os

import mmdet_adasap  # noqa: F401
from mmdet_adasap.apis import ToolParser, run_tool
from mmdet_adasap.robustness.corruptions import SEVERITIES, resolve_corruptions
from mmdet_adasap.robustness.voc_c import FORMATS, render_coco_c, render_voc_c


def parse_args():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('data_root', help='VOCdevkit folder (holds VOC2007/...); with --coco-ann the image folder')
    p.add_argument('out_root', help='where the corrupted copies go')
    p.add_argument('--corruptions', nargs='+', default=['benchmark'],
                   help='benchmark (15, default) | all (19) | holdout (4) | noise | blur | weather | digital | names')
    p.add_argument('--severities', nargs='+', type=int, default=list(SEVERITIES))
    p.add_argument('--coco-ann', help='a COCO-format annotation file: render its images (under data_root) instead '
                   'of a VOC split')
    p.add_argument('--years', nargs='+', default=['VOC2007'])
    p.add_argument('--split', default='test', help='ImageSets/Main/<split>.txt (default: test)')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='processes (default: all cores)')
    p.add_argument('--format', choices=FORMATS, default='png',
                   help='png (lossless, identical to on-the-fly; default) or jpg (smaller, re-compressed)')
    p.add_argument('--jpeg-quality', type=int, default=95)
    p.add_argument('--seed', type=int, default=0, help='base seed of every (image, corruption, severity)')
    return p.parse_args()


def main():
    args = parse_args()
    corruptions = resolve_corruptions(args.corruptions)
    common = dict(workers=args.workers, fmt=args.format, jpeg_quality=args.jpeg_quality, seed=args.seed)
    if args.coco_ann:
        summary = render_coco_c(args.coco_ann, args.data_root, args.out_root, corruptions, args.severities, **common)
    else:
        summary = render_voc_c(args.data_root, args.out_root, corruptions, args.severities, args.years, args.split,
                               **common)
    rate = summary['rendered'] / summary['seconds'] if summary['seconds'] > 0 else float('nan')
    print(f"{summary['images']} images x {len(corruptions)} corruptions x {len(set(args.severities))} severities: "
          f"rendered {summary['rendered']}, already present {summary['skipped']}, "
          f"{summary['seconds']:.1f} s ({rate:.2f} corrupted images/s with {args.workers} workers)")


if __name__ == '__main__':
    run_tool(main)
