# SAM/ASAM, the paper's ablation baseline: the AdaSAP recipe (adasap.py) with a *uniform* SAM warm-up (the same
# radius for every channel, so nothing singles out the channels about to be pruned), then the same uniform-ASAM
# fine-tune. The one place that warm-up is written down.
# Used as the second base of a sam_asam config (`_base_ = ['./<detector>_adasap_flops50.py',
# '../_base_/adasap/sam_asam.py']`), which takes it with `_base_.pop('sam_warmup_sharpness')` into
# default_hooks.adasap.warmup.sharpness (the pop keeps this helper key out of the run's config).
sam_warmup_sharpness = dict(_delete_=True, rho=0.05, adaptive=False)
