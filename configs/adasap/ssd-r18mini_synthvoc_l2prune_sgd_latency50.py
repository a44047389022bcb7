# The magnitude-pruning baseline of ssd-r18mini_synthvoc_adasap_latency50.py: the same latency knapsack to 50%
# of the dense latency, with plain SGD in every phase. Build the table first (see that config's header):
#   python tools/build_latency_table.py configs/demo/ssd-r18mini_synthvoc_dense.py \
#       --input-size 256 --batch 8 --device cpu --threads 1 --out work_dirs/ssd-r18mini_synthvoc_latency_cpu1_b8.json
_base_ = ['./ssd-r18mini_synthvoc_adasap_latency50.py', '../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
