# The comparison at 0.25 of the dense FLOPs with a 4x schedule (issue 30): does AdaSAP need more than the shipped 6
# epochs? 24 epochs per run: warm-up 2, pruning 4 (the same 4 exponential steps, spaced over the longer phase by
# the hook), fine-tune 18, the cosine learning rate spanning all 24 (the method option `schedule=`,
# mmdet_adasap/experiments/arms.py). L2 + SGD, SAM/ASAM, AdaSAP and the cheap AdaSAP (the sharpness step on every
# 5th iteration), each with the radii the 0.25 val search chose (as the phase ablation: lr 0.02, SAM/ASAM warm-up
# rho 0.05, fine-tune rho 0.1 for both families, AdaSAP rho_max 2.0; docs/results/search25/); test seeds 11-15,
# severity 3, the committed dense start, every run also evaluated at the end of its pruning phase (epoch 6).
# The 1x numbers to set them beside: configs/compare/ssd-r18mini_synthvoc_compare.py at 0.25 (docs/results.md).
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_schedule4x.py --out work_dirs/schedule4x
_base_ = './ssd-r18mini_synthvoc_compare.py'
ratios = [0.25]
_keep = {'default_hooks.checkpoint.max_keep_ckpts': -1}
_hook = 'default_hooks.adasap.'
_ft = {_hook + 'finetune.sharpness.rho': 0.1}  # the 0.25 search's fine-tune rho (both families)
_end = [0.25]
_4x = dict(warmup=2, pruning=4, finetune=18)  # phase lengths in epochs (the shipped recipe: 1, 2, 3)
_ada = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py', label='L2 + SGD, 4x',
                     cfg_options=_keep, schedule=_4x, end_of_pruning=_end),
    sam_asam=dict(config='configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py', label='SAM warm-up + ASAM, 4x',
                  cfg_options={**_keep, **_ft, _hook + 'warmup.sharpness.rho': 0.05}, schedule=_4x,
                  end_of_pruning=_end),
    adasap=dict(config=_ada, label='AdaSAP (L2), 4x', cfg_options={**_keep, **_ft}, schedule=_4x,
                end_of_pruning=_end),
    adasap_every5=dict(config=_ada, label='AdaSAP, sharpness every 5th step, 4x',
                       cfg_options={**_keep, **_ft, 'optim_wrapper.sam_interval': 5}, schedule=_4x,
                       end_of_pruning=_end))
reference = dict(_delete_=True, flops='adasap')
