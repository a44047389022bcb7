# AdaSAP on the demo detector with first-order Taylor importance (|w * dL/dw| per channel, accumulated over the
# training steps) instead of L2 norms: the ranking that both prunes and sets the adaptive warm-up radius.
_base_ = '../../adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
default_hooks = dict(adasap=dict(pruning=dict(importance='taylor')))
