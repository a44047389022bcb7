# The demo detector (ssd-r18mini_synthvoc_dense.py, unchanged) trained and evaluated on the synthetic set in COCO
# format (configs/_base_/datasets/synthetic_coco.py: CocoDataset + CocoMetric, key coco/bbox_mAP). Make the json
# files once with tools/voc_to_coco.py (the two commands in that file), then, as with any COCO-format config:
#   python tools/train.py configs/demo/ssd-r18mini_synthcoco_dense.py --work-dir work_dirs/demo_coco_dense
#   python tools/test_robustness.py configs/demo/ssd-r18mini_synthcoco_dense.py CKPT --out work_dirs/demo_coco_rob
# A user's own COCO-format config is turned into a robustness run the same way: its test_evaluator (one
# CocoMetric) is the metric, P / mPC / rPC are computed on coco/bbox_mAP unless --metric-key names another key.
_base_ = ['./ssd-r18mini_synthvoc_dense.py', '../_base_/datasets/synthetic_coco.py']
__coco = _base_.pop('synthetic_coco')
train_dataloader = dict(dataset=dict(__coco.train, pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(__coco.test, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = __coco.evaluator
test_evaluator = val_evaluator
