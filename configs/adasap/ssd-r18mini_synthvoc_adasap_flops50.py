# AdaSAP (the method) on the demo detector: prune the trained dense model to 50% of its FLOPs in 6 epochs.
#   phase 1, warm-up   (epoch 1):    ASAM whose per-channel radius follows the L2 importance, rho_max for the
#                                    least important channel down to rho_min for the most important one
#   phase 2, pruning   (epochs 2-3): 4 HALP-style exponential steps down to 50% FLOPs (global L2 ranking), the
#                                    adaptive radius continuing on the channels still alive
#   phase 3, fine-tune (epochs 4-6): uniform ASAM (rho 0.5) on the pruned network
# lr 0.02 rather than 0.01: the val search (docs/results/demo/search_val/) found it better for every family (val
# mPC, seed 1: AdaSAP 39.39 against 38.43, SAM/ASAM 40.05 against 39.09, L2 + SGD 39.45 against 38.75; L2 + SGD
# seed 2: 39.82 against 39.18); rho_max 1.0 and the paper's fine-tune rho 2.0 were not better (38.60, 38.02).
# Then work_dir/pruned.pth holds the physically smaller detector; evaluate it with
#   python tools/test.py configs/pruned/ssd-r18mini_synthvoc_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from, the dense checkpoint (tools/train.py configs/demo/ssd-r18mini_synthvoc_dense.py).
# The hook lives in default_hooks (a dict) so that variants override single fields; custom_hooks is a list and
# could only be replaced whole.
_base_ = ['../demo/ssd-r18mini_synthvoc_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/demo_dense/epoch_22.pth'

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(type='SAMOptimWrapper', optimizer=dict(lr=0.02))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py, here pruning to epoch 3 in 4 steps
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2),  # every epoch: a run can resume in any phase
    adasap=dict(__adasap, pruning=dict(__adasap.pruning, end=3, schedule=dict(type='exponential', steps=4))))
