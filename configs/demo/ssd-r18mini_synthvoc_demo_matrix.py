# The demo (`make demo`, tools/demo.py): one seed of the method comparison on the demo detector. From ONE dense
# checkpoint, the comparison's committed dense start (docs/results/demo/dense_start.pth: the converged dense
# config's last epoch, trained on the search split; nothing was chosen on test): L2 pruning + SGD and AdaSAP to
# 50 % of the dense FLOPs, AdaSAP_L (HALP's latency knapsack inside AdaSAP's schedule) to 60 % of the dense batch-1
# latency on this CPU, every model evaluated on clean test images and 4 corruptions (one per category) at
# severity 3. One seed is a demonstration; docs/results.md holds the multi-seed answer.
#   python tools/demo.py                     # builds the latency table first, then runs this matrix
#   python tools/demo.py --train-dense       # trains the dense start too (the 22-epoch dense config, ~10 min more)
#   python tools/compare_methods.py configs/demo/ssd-r18mini_synthvoc_demo_matrix.py --out work_dirs/demo
_base_ = '../compare/ssd-r18mini_synthvoc_matrix.py'
dense = dict(config='configs/demo/ssd-r18mini_synthvoc_dense_converged.py',
             checkpoint='docs/results/demo/dense_start.pth')
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py', label='L2 + SGD'),
    adasap=dict(config='configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py', label='AdaSAP'),
    adasap_l=dict(config='configs/adasap/ssd-r18mini_synthvoc_adasap_latency50.py', label='AdaSAP_L', ratios=[0.6],
                  cfg_options={  # the table: tools/build_latency_table.py --batch 1 --threads 1 (tools/demo.py builds it)
                      'default_hooks.adasap.latency_table': 'work_dirs/demo/latency_table_cpu1_b1.json',
                      'default_hooks.adasap.pruning.target.batch': 1}))
reference = dict(_delete_=True, flops='adasap', latency='adasap_l')
ratios = [0.5]
seeds = dict(_delete_=True, test=[1])
# test is only looked at by the evaluation: no validation while training, not even after the last epoch
splits = dict(_delete_=True, test={'train_cfg.val_interval': 10 ** 6, 'train_cfg.val_begin': 10 ** 6})
evaluation = dict(corruptions=['gaussian_noise', 'motion_blur', 'snow', 'contrast'], unseen=None, severities=[3],
                  cache_root=None, latency=dict(repeats=30, threads=1), category_ratio=0.5)
