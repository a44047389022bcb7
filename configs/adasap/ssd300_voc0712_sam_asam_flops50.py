# The paper's ablation baseline on SSD300: the AdaSAP schedule with a *uniform* SAM warm-up (same radius for every
# channel, so nothing singles out the channels about to be pruned), then uniform-ASAM fine-tuning.
_base_ = ['./ssd300_voc0712_adasap_flops50.py', '../_base_/adasap/sam_asam.py']
default_hooks = dict(adasap=dict(warmup=dict(sharpness=_base_.pop('sam_warmup_sharpness'))))  # uniform SAM
