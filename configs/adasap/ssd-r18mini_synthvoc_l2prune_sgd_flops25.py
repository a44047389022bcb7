# The magnitude-pruning baseline (plain SGD) on the demo detector at 25% FLOPs.
_base_ = './ssd-r18mini_synthvoc_l2prune_sgd_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
