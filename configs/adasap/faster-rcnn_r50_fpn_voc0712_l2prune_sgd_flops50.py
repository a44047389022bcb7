# The magnitude-pruning baseline on Faster R-CNN R50-FPN: the AdaSAP schedule and pruner (global L2, exponential steps to 50%
# FLOPs) with plain SGD in every phase.
_base_ = ['./faster-rcnn_r50_fpn_voc0712_adasap_flops50.py', '../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
