# L2 + SGD, the magnitude-pruning baseline: the AdaSAP schedule and pruner (global L2 ranking) with no sharpness
# term in any phase, the one place that is written down. The config also swaps SAMOptimWrapper for the plain
# OptimWrapper around the detector's own optimizer (one line there: it depends on the detector's paramwise_cfg).
# Used as the second base of an l2prune_sgd config (`_base_ = ['./<detector>_adasap_<target>.py',
# '../_base_/adasap/l2prune_sgd.py']`), which takes it with `_base_.pop('l2prune_sgd_phases')` into
# default_hooks.adasap (the pop keeps this helper key out of the run's config).
l2prune_sgd_phases = dict(warmup=dict(sharpness=None), finetune=dict(sharpness=None))
