# The magnitude-pruning baseline on RTMDet-tiny (synthetic VOC): the AdaSAP schedule and pruner of
# rtmdet-tiny_synthvoc_adasap_flops50.py (global L2, 4 exponential steps to 50% FLOPs, the same hooks) with the plain
# optimizer step in every phase: the recipe's AdamW with its parameter-wise decay settings ("sgd" names the
# family, the plain step without a sharpness term).
_base_ = ['./rtmdet-tiny_synthvoc_adasap_flops50.py', '../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
