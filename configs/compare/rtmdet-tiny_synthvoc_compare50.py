# The comparison on a second detector family (issue 30): RTMDet-tiny on synthetic VOC, a CSP detector with EMA and
# mosaic augmentation where the demo SSD has neither. Does the sign of AdaSAP - L2 + SGD carry over? One dense
# start (configs/rtmdet/rtmdet-tiny_synthvoc_dense.py trained once into OUT/dense/, its last epoch), 0.5 of the
# dense FLOPs, L2 + SGD vs SAM/ASAM vs AdaSAP with the shipped RTMDet recipes (not tuned on RTMDet: their short
# schedule of 2 epochs, AdamW), 3 test seeds, VOC2007 test at severity 3 (15 benchmark corruptions, the 4 holdout
# ones apart). Every 0.5 run also evaluated at the end of its pruning phase.
#   python tools/compare_methods.py configs/compare/rtmdet-tiny_synthvoc_compare50.py --out work_dirs/compare_rtmdet
_base_ = './ssd-r18mini_synthvoc_matrix.py'
dense = dict(config='configs/rtmdet/rtmdet-tiny_synthvoc_dense.py', checkpoint=None)
pruned_config = 'configs/pruned/rtmdet-tiny_synthvoc_pruned.py'
_keep = {'default_hooks.checkpoint.max_keep_ckpts': -1}  # the end of pruning's checkpoint stays for its evaluation
_end = [0.5]
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/adasap/rtmdet-tiny_synthvoc_l2prune_sgd_flops50.py', label='L2 + AdamW',
                     cfg_options=_keep, end_of_pruning=_end),
    sam_asam=dict(config='configs/compare/methods/rtmdet-tiny_synthvoc_sam_asam_flops50.py',
                  label='SAM warm-up + ASAM', cfg_options=_keep, end_of_pruning=_end),
    adasap=dict(config='configs/adasap/rtmdet-tiny_synthvoc_adasap_flops50.py', label='AdaSAP (L2)',
                cfg_options=_keep, end_of_pruning=_end))
reference = 'adasap'
ratios = [0.5]
seeds = dict(_delete_=True, test=[11, 12, 13])
splits = dict(_delete_=True, test={'train_cfg.val_interval': 10 ** 6})
evaluation = dict(severities=[3])
