# AdaSAP on the demo detector down to 25% of its FLOPs (same phases as the 50% config).
_base_ = './ssd-r18mini_synthvoc_adasap_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
