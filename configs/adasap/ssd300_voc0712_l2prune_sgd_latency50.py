# The magnitude-pruning baseline of ssd300_voc0712_adasap_latency50.py: the same latency knapsack to 50% of the dense
# latency, with plain SGD in every phase. Build the table first (see that config's header):
#   python tools/build_latency_table.py configs/ssd/ssd300_voc0712_dense.py \
#       --input-size 300 --batch 1 --device cpu --threads 1 --out work_dirs/ssd300_voc0712_latency_cpu1.json
_base_ = ['./ssd300_voc0712_adasap_latency50.py', '../_base_/adasap/l2prune_sgd.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}})
default_hooks = dict(adasap=_base_.pop('l2prune_sgd_phases'))  # configs/_base_/adasap/l2prune_sgd.py
