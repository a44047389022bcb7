# The paper's ablation baseline on the demo detector: the AdaSAP schedule with a *uniform* SAM warm-up (same radius
# for every channel, so nothing singles out the channels about to be pruned), then uniform-ASAM fine-tuning.
# Warm-up rho 0.2 rather than 0.05: the val search's choice (val mPC, seed 1: 39.09 against 38.96; 40.05 at lr 0.02).
_base_ = ['./ssd-r18mini_synthvoc_adasap_flops50.py', '../_base_/adasap/sam_asam.py']
default_hooks = dict(adasap=dict(warmup=dict(sharpness=dict(_base_.pop('sam_warmup_sharpness'), rho=0.2))))
