# AdaSAP on SSD512 down to 25% of its FLOPs (same phases as the 50% config).
_base_ = './ssd512_voc0712_adasap_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(target=dict(ratio=0.25))))
