# AdaSAP_L on the demo detector: the AdaSAP schedule of ssd-r18mini_synthvoc_adasap_flops50.py with HALP's
# latency-saliency knapsack, to 50% of the dense latency measured on the deployment machine (CPU, 1 thread,
# batch 8, where the smallest reachable model measures 0.41-0.48 of dense and a 0.5 target lands at 0.45-0.52 (docs/pruning.md,
# "Latency tables"); at batch 1 the demo's fixed cost (unprunable head, per-op overhead) puts that
# floor at 0.49-0.57, and a target below it is refused, naming the minimum).
# Build the table first, on that machine (prints its build time and calibration errors):
#   python tools/build_latency_table.py configs/demo/ssd-r18mini_synthvoc_dense.py \
#       --input-size 256 --batch 8 --device cpu --threads 1 --out work_dirs/ssd-r18mini_synthvoc_latency_cpu1_b8.json
# (for a GPU target: --device cuda --batch B, and device='cuda', batch=B below).
# Importance: HALP's raw first-order Taylor (a loss estimate, comparable across layers). A knapsack over
# per-group normalised L2 scores sees every layer as equally valuable and cuts the cheapest-per-ms ones (the
# stem) hardest (tools/benchmark_latency_prune.py --importance l2|taylor measures both; docs/pruning.md, "Targets and rankings").
_base_ = ['./ssd-r18mini_synthvoc_adasap_flops50.py', '../_base_/adasap/adasap_l.py']
default_hooks = dict(adasap=dict(
    latency_table='work_dirs/ssd-r18mini_synthvoc_latency_cpu1_b8.json',
    pruning=dict(_base_.pop('adasap_l_pruning'),  # configs/_base_/adasap/adasap_l.py: Taylor knapsack
                 target=dict(type='latency', ratio=0.5, batch=8, device='cpu', threads=1))))
