# The demo detector at the shapes of a pruned checkpoint (see ssd-r18mini_synthvoc_pruned.py), evaluated on the
# synthetic set in COCO format (CocoDataset + CocoMetric, configs/demo/ssd-r18mini_synthcoco_dense.py):
#   python tools/test_robustness.py configs/pruned/ssd-r18mini_synthcoco_pruned.py WORK_DIR/pruned.pth --out DIR
_base_ = '../demo/ssd-r18mini_synthcoco_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
