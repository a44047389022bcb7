# AdaSAP_L on RTMDet-tiny (synthetic VOC): the AdaSAP schedule of rtmdet-tiny_synthvoc_adasap_flops50.py with
# HALP's latency-saliency knapsack, to 50% of the dense latency measured on the deployment machine (CPU, 1
# thread, batch 8, as the SSD demo's latency configs).
# Build the table first, on that machine (prints its build time and calibration errors):
#   python tools/build_latency_table.py configs/rtmdet/rtmdet-tiny_synthvoc_dense.py \
#       --input-size 256 --batch 8 --device cpu --threads 1 --out work_dirs/rtmdet-tiny_synthvoc_latency_cpu1_b8.json
# (for a GPU target: --device cuda --batch B, and device='cuda', batch=B below).
# Importance: HALP's raw first-order Taylor (a loss estimate, comparable across layers), as for the SSD latency
# configs (docs/pruning.md, "Targets and rankings").
_base_ = ['./rtmdet-tiny_synthvoc_adasap_flops50.py', '../_base_/adasap/adasap_l.py']
default_hooks = dict(adasap=dict(
    latency_table='work_dirs/rtmdet-tiny_synthvoc_latency_cpu1_b8.json',
    pruning=dict(_base_.pop('adasap_l_pruning'),  # configs/_base_/adasap/adasap_l.py: Taylor knapsack
                 target=dict(type='latency', ratio=0.5, batch=8, device='cpu', threads=1))))
