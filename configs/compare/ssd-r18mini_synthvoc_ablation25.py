# The phase ablation at 0.25 of the dense FLOPs (issue 30): which of AdaSAP's two sharpness phases moves clean mAP
# and mPC. A 2x2 design, warm-up {adaptive (AdaSAP's adaptive-radius ASAM), SGD} x fine-tune {uniform ASAM, SGD},
# every arm the AdaSAP config (same pruner, 4 exponential steps, schedule, lr) with the hook's two sharpness steps
# replaced through the method option `phases=` (mmdet_adasap/experiments/arms.py): adaptive + ASAM = AdaSAP,
# SGD + SGD = L2 + SGD (the same training configs as the shipped ones, tested), adaptive + SGD, SGD + ASAM; plus
# the uniform SAM warm-up + ASAM (= SAM/ASAM) as the uniform-warm-up row. Test seeds 11-15, severity 3, the
# committed dense start, every run also evaluated at the end of its pruning phase (as the comparison). The table
# (OUT/results.md) adds the main effects of the warm-up and of the fine-tune and their interaction, paired by
# seed with a 95 % t interval, on mPC and clean mAP.
#
# The radii and the lr are the val search's choices at 0.25 (configs/compare/ssd-r18mini_synthvoc_search25.py,
# records in docs/results/search25/, seeds 1-2 on val; set here before any test run), each line marked
# `# CHOSEN BY THE SEARCH:`. One lr for every arm, so that the arms differ in their sharpness steps only.
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_ablation25.py --out work_dirs/ablation25
_base_ = './ssd-r18mini_synthvoc_compare.py'
ratios = [0.25]
_hook = 'default_hooks.adasap.'
_ada = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
_end = [0.25]
_lr = 0.02  # CHOSEN BY THE SEARCH: L2 + SGD's lr (val mPC, 2-seed mean: 0.02 33.95, 0.01 32.15), for every arm
_rho_max = 2.0  # CHOSEN BY THE SEARCH: AdaSAP's warm-up rho_max (adasap_r2_ft01: val mPC 33.36, the best of 6)
_ft_rho = 0.1  # CHOSEN BY THE SEARCH: AdaSAP's fine-tune rho (r2: ft 0.1 33.36, ft 0.5 32.90); every ASAM fine-tune
_sam_warm_rho = 0.05  # CHOSEN BY THE SEARCH: SAM/ASAM's warm-up rho (sam_asam_w005_ft01: val mPC 35.05, the best of 4)
_sam_ft_rho = 0.1  # CHOSEN BY THE SEARCH: SAM/ASAM's fine-tune rho (w0.05: ft 0.1 35.05, ft 0.5 34.52)
_keep = {'default_hooks.checkpoint.max_keep_ckpts': -1, 'optim_wrapper.optimizer.lr': _lr}
_adaptive = {_hook + 'warmup.sharpness.radius.rho_max': _rho_max}
_asam = {_hook + 'finetune.sharpness.rho': _ft_rho}


def _arm(warmup, finetune, label, knobs):
    return dict(config=_ada, label=label, phases=dict(warmup=warmup, finetune=finetune),
                cfg_options={**_keep, **knobs}, end_of_pruning=_end)


methods = dict(
    _delete_=True,
    adasap=_arm('adaptive', 'asam', 'AdaSAP: adaptive warm-up + ASAM fine-tune', {**_adaptive, **_asam}),
    adaptive_sgd=_arm('adaptive', 'sgd', 'adaptive warm-up + SGD fine-tune', _adaptive),
    sgd_asam=_arm('sgd', 'asam', 'SGD warm-up + ASAM fine-tune', _asam),
    l2prune_sgd=_arm('sgd', 'sgd', 'L2 + SGD: SGD warm-up + SGD fine-tune', {}),
    sam_asam=_arm('uniform', 'asam', 'SAM/ASAM: uniform SAM warm-up + ASAM fine-tune',
                  {_hook + 'warmup.sharpness.rho': _sam_warm_rho, _hook + 'finetune.sharpness.rho': _sam_ft_rho}))
reference = dict(_delete_=True, flops='adasap')
