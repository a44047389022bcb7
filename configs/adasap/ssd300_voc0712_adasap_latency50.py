# AdaSAP_L on the SSD300-VGG16: the AdaSAP schedule of ssd300_voc0712_adasap_flops50.py with HALP's latency-saliency
# knapsack, to 50% of the dense latency measured on the deployment machine (CPU, 1 thread, batch 1).
# Build the table first, on that machine (prints its build time and calibration errors):
#   python tools/build_latency_table.py configs/ssd/ssd300_voc0712_dense.py \
#       --input-size 300 --batch 1 --device cpu --threads 1 --out work_dirs/ssd300_voc0712_latency_cpu1.json
# (for a GPU target: --device cuda --batch B, and device='cuda', batch=B below).
# Importance: HALP's raw first-order Taylor (a loss estimate, comparable across layers). A knapsack over
# per-group normalised L2 scores sees every layer as equally valuable and cuts the cheapest-per-ms ones (the
# stem) hardest (tools/benchmark_latency_prune.py --importance l2|taylor measures both; docs/pruning.md, "Targets and rankings").
_base_ = ['./ssd300_voc0712_adasap_flops50.py', '../_base_/adasap/adasap_l.py']
default_hooks = dict(adasap=dict(
    latency_table='work_dirs/ssd300_voc0712_latency_cpu1.json',
    pruning=dict(_base_.pop('adasap_l_pruning'),  # configs/_base_/adasap/adasap_l.py: Taylor knapsack
                 target=dict(type='latency', ratio=0.5, batch=1, device='cpu', threads=1))))
