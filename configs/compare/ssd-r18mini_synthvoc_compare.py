# The method comparison where AdaSAP is most likely to differ: 0.25 and 0.5 of the dense FLOPs, 5 test seeds, a
# cheap-sharpness AdaSAP (the sharpness step on every 5th iteration only), every run from ONE dense start (the val
# search's dense configuration, trained on the search split: VOC2007 train + VOC2012 trainval, judged on val only),
# trained on the same images, reported on VOC2007 test at severity 3 (15 benchmark corruptions; 4 holdout ones
# reported apart). Recipes: the val search's choices (lr 0.02 for every family, SAM/ASAM warm-up rho 0.2, AdaSAP
# rho_max 2.0, fine-tune rho 0.5), used unchanged at 0.25. Every 0.25 run is also evaluated at the end of its
# pruning phase (the checkpoint of its last iteration; every epoch's checkpoint is kept). Two no-pruning controls
# (6 more epochs of SGD, of uniform ASAM) bound what sharpness-aware training can show here.
#   python tools/make_voc_c.py data/synthetic_voc/VOCdevkit data/synthetic_voc_c --corruptions all --severities 3 --split test
#   M=configs/compare/ssd-r18mini_synthvoc_compare.py
#   for r in 0.25 1.0 0.5 0.53; do python tools/compare_methods.py $M --out work_dirs/compare --ratios $r; done
# (the same loop in a second process shares the work: each passes over the runs the other holds; 0.53: the
# latency pair below), then, with nothing else running, time every run again:
#   python tools/compare_methods.py $M --out work_dirs/compare --remeasure-latency
_base_ = './ssd-r18mini_synthvoc_final.py'
dense = dict(checkpoint='docs/results/demo/dense_start.pth')  # the search split's dense start, committed
ratios = [0.25, 0.5]
_keep = {'default_hooks.checkpoint.max_keep_ckpts': -1}
_ada = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
_end = [0.25]  # the end-of-pruning evaluation
_control = 'configs/compare/methods/ssd-r18mini_synthvoc_control_'
# AdaSAP_L against HALP (the same Taylor latency knapsack, SGD throughout) at 0.53 of the dense batch-1 latency,
# the median measured latency of the 0.25-FLOPs runs. The table, built on the machine that runs the matrix:
#   python tools/build_latency_table.py configs/demo/ssd-r18mini_synthvoc_dense_converged.py --input-size 256 \
#       --batch 1 --threads 1 --out work_dirs/compare/latency_table_cpu1_b1.json
_lat = {**_keep, 'default_hooks.adasap.latency_table': 'work_dirs/compare/latency_table_cpu1_b1.json',
        'default_hooks.adasap.pruning.target.batch': 1}
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py', label='L2 + SGD',
                     cfg_options=_keep, end_of_pruning=_end),
    sam_asam=dict(config='configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py', label='SAM warm-up + ASAM',
                  cfg_options=_keep, end_of_pruning=_end),
    adasap=dict(config=_ada, label='AdaSAP (L2)', cfg_options=_keep, end_of_pruning=_end),
    adasap_every5=dict(config=_ada, label='AdaSAP, sharpness every 5th step',
                       cfg_options={**_keep, 'optim_wrapper.sam_interval': 5}, end_of_pruning=_end),
    adasap_l=dict(config='configs/adasap/ssd-r18mini_synthvoc_adasap_latency50.py', label='AdaSAP_L', ratios=[0.53],
                  cfg_options=_lat),
    halp_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_latency50.py',
                  label='HALP (latency knapsack + SGD)', ratios=[0.53], cfg_options=_lat),
    control_sgd=dict(config=_control + 'sgd.py', label='control: SGD, no pruning', control=True),
    control_asam=dict(config=_control + 'asam.py', label='control: uniform ASAM, no pruning', control=True))
reference = dict(_delete_=True, flops='adasap', latency='adasap_l', control='control_asam')
seeds = dict(test=[11, 12, 13, 14, 15])
evaluation = dict(severities=[3], category_ratio=0.25)
