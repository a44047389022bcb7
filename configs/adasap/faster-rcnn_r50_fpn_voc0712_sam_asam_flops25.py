# The uniform SAM warm-up + ASAM fine-tune baseline on Faster R-CNN R50-FPN at 25% FLOPs.
_base_ = './faster-rcnn_r50_fpn_voc0712_sam_asam_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
