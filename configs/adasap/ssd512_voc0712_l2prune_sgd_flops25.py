# The magnitude-pruning baseline (plain SGD) on SSD512 at 25% FLOPs.
_base_ = './ssd512_voc0712_l2prune_sgd_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
