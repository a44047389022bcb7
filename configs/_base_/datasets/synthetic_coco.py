# The shipped synthetic set in COCO format: the same images and boxes as synthetic_voc.py (train on VOC2007 +
# VOC2012 trainval, evaluate on VOC2007 test), annotated by COCO json files that tools/voc_to_coco.py writes, and
# evaluated with mmdet's CocoMetric (AP@[.5:.95], key coco/bbox_mAP) -- the shape of a user's own COCO-format data:
#   python tools/voc_to_coco.py data/synthetic_voc/VOCdevkit data/synthetic_coco/annotations/instances_trainval0712.json --split trainval --years 2007 2012
#   python tools/voc_to_coco.py data/synthetic_voc/VOCdevkit data/synthetic_coco/annotations/instances_test2007.json --split test
# The json's file_name is relative to the VOCdevkit, which data_prefix points at (no image is copied).
# Used as the second base of a config whose first base reads synthetic_voc.py (its pipelines are kept), which
# takes it with `__coco = _base_.pop('synthetic_coco')` and swaps the datasets and evaluators (see
# configs/demo/ssd-r18mini_synthcoco_dense.py); the pop keeps this helper key out of the run's config (mmengine
# forbids the same top-level key in two bases, so a fragment cannot define train_dataloader next to the
# detector's own).
__coco_root = 'data/synthetic_coco/'
__coco_dataset = dict(_delete_=True, type='CocoDataset', data_root=__coco_root,
                     data_prefix=dict(img='../synthetic_voc/VOCdevkit/'),
                     metainfo=dict(classes=('disc', 'box', 'triangle', 'star', 'ring', 'cross')), backend_args=None)
synthetic_coco = dict(
    train=dict(__coco_dataset, ann_file='annotations/instances_trainval0712.json',
               filter_cfg=dict(filter_empty_gt=True, min_size=32)),
    test=dict(__coco_dataset, ann_file='annotations/instances_test2007.json', test_mode=True),
    evaluator=dict(_delete_=True, type='CocoMetric', ann_file=__coco_root + 'annotations/instances_test2007.json',
                   metric='bbox', classwise=True, backend_args=None))
