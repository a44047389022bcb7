# The magnitude-pruning baseline on YOLOX-s, Pascal VOC07+12: the AdaSAP schedule and pruner of
# yolox-s_voc0712_adasap_flops50.py (global L2, exponential steps to 50% FLOPs, the same hooks) with the plain
# optimizer step in every phase (the recipe's SGD, its parameter-wise decay settings kept).
_base_ = ['./yolox-s_voc0712_adasap_flops50.py', '../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
