# The uniform SAM warm-up + ASAM fine-tune baseline on SSD300 at 25% FLOPs.
_base_ = './ssd300_voc0712_sam_asam_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
