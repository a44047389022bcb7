# AdaSAP to 50% FLOPs on the demo detector (configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py, the recipe
# unchanged) with the synthetic set in COCO format (configs/_base_/datasets/synthetic_coco.py: CocoDataset +
# CocoMetric), as in configs/demo/ssd-r18mini_synthcoco_dense.py. Evaluate the export with
# configs/pruned/ssd-r18mini_synthcoco_pruned.py.
_base_ = ['../../adasap/ssd-r18mini_synthvoc_adasap_flops50.py', '../../_base_/datasets/synthetic_coco.py']
load_from = 'work_dirs/demo_coco_dense/epoch_22.pth'
__coco = _base_.pop('synthetic_coco')
train_dataloader = dict(dataset=dict(__coco.train, pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(__coco.test, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = __coco.evaluator
test_evaluator = val_evaluator
