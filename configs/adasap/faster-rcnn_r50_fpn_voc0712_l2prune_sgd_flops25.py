# The magnitude-pruning baseline (plain SGD) on Faster R-CNN R50-FPN at 25% FLOPs.
_base_ = './faster-rcnn_r50_fpn_voc0712_l2prune_sgd_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
