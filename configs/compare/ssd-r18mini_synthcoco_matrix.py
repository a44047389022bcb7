# The method comparison on COCO-format data (copy this for your own COCO-format detector): the demo detector with
# the synthetic set as COCO json (CocoDataset + CocoMetric, configs/_base_/datasets/synthetic_coco.py), L2 + SGD
# against AdaSAP at 50 % of the dense FLOPs. The table's clean mAP / mPC / rPC are computed on one key of the
# evaluator's results, evaluation.metric_key (None: the dense config's default, coco/bbox_mAP for CocoMetric,
# as tools/test_robustness.py picks it; e.g. 'coco/bbox_mAP_50'); the table says which key it used.
#   python tools/voc_to_coco.py data/synthetic_voc/VOCdevkit data/synthetic_coco/annotations/instances_trainval0712.json --split trainval --years 2007 2012
#   python tools/voc_to_coco.py data/synthetic_voc/VOCdevkit data/synthetic_coco/annotations/instances_test2007.json --split test
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthcoco_matrix.py --out work_dirs/compare_coco
# For your data: dense = your COCO-format config (its test_evaluator one CocoMetric) and checkpoint, pruned_config
# = that config with the PrunedDetector lines of configs/pruned/ssd-r18mini_synthcoco_pruned.py, methods = your
# detector's method configs (detector + configs/_base_/adasap/ recipe, as configs/compare/methods/*_synthcoco_*.py).
_base_ = './ssd-r18mini_synthvoc_matrix.py'
# the committed demo dense start: trained on the same images and classes (in VOC format; None trains the dense
# COCO config once into OUT/dense/)
dense = dict(config='configs/demo/ssd-r18mini_synthcoco_dense.py', checkpoint='docs/results/demo/dense_start.pth')
pruned_config = 'configs/pruned/ssd-r18mini_synthcoco_pruned.py'
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/compare/methods/ssd-r18mini_synthcoco_l2prune_sgd_flops50.py', label='L2 + SGD'),
    adasap=dict(config='configs/compare/methods/ssd-r18mini_synthcoco_adasap_flops50.py', label='AdaSAP'))
reference = 'adasap'
ratios = [0.5]
seeds = dict(_delete_=True, test=[1])
splits = dict(_delete_=True, test={'train_cfg.val_interval': 10 ** 6, 'train_cfg.val_begin': 10 ** 6})
evaluation = dict(corruptions=['gaussian_noise', 'motion_blur', 'snow', 'contrast'], unseen=None, severities=[3],
                  metric_key=None,  # None: coco/bbox_mAP (the CocoMetric default)
                  cache_root=None, latency=dict(repeats=30, threads=1), category_ratio=0.5)
