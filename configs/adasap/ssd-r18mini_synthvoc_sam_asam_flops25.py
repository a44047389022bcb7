# The uniform SAM warm-up + ASAM fine-tune baseline on the demo detector at 25% FLOPs.
_base_ = './ssd-r18mini_synthvoc_sam_asam_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
