# The magnitude-pruning baseline (L2 + SGD, configs/_base_/adasap/l2prune_sgd.py) on the demo detector with the
# synthetic set in COCO format: ssd-r18mini_synthcoco_adasap_flops50.py with plain SGD in every phase.
_base_ = ['./ssd-r18mini_synthcoco_adasap_flops50.py', '../../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
