# SAM/ASAM on RTMDet-tiny (synthetic VOC), the second detector of the comparison: the AdaSAP schedule, pruner and
# hooks of configs/adasap/rtmdet-tiny_synthvoc_adasap_flops50.py with the uniform SAM warm-up of the recipe
# fragment (configs/_base_/adasap/sam_asam.py, rho 0.05) and the same uniform-ASAM fine-tune. Not tuned on RTMDet.
_base_ = ['../../adasap/rtmdet-tiny_synthvoc_adasap_flops50.py', '../../_base_/adasap/sam_asam.py']
default_hooks = dict(adasap=dict(warmup=dict(sharpness=_base_.pop('sam_warmup_sharpness'))))
