# The magnitude-pruning baseline on SSD300: the AdaSAP schedule and pruner (global L2, exponential steps to 50%
# FLOPs) with plain SGD in every phase.
_base_ = './ssd300_voc0712_adasap_flops50.py'
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}})
default_hooks = dict(adasap=dict(warmup=dict(sharpness=None), finetune=dict(sharpness=None)))
