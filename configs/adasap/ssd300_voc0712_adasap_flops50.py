# AdaSAP (the method) on SSD300-VGG16, Pascal VOC07+12: prune the trained dense model to 50% of its FLOPs in
# 12 epochs (each epoch is mmdet's RepeatDataset x10 over VOC07+12 trainval, half the dense schedule):
#   phase 1, warm-up   (epoch 1):     ASAM, per-channel radius from the L2 importance (rho_max for the least
#                                     important channel .. rho_min for the most important)
#   phase 2, pruning   (epochs 2-4):  30 HALP-style exponential steps to 50% FLOPs (global L2 ranking), the
#                                     adaptive radius continuing on the channels still alive
#   phase 3, fine-tune (epochs 5-12): uniform ASAM (rho 0.5) on the pruned network
# Then work_dir/pruned.pth holds the physically smaller detector:
#   python tools/test.py configs/pruned/ssd300_voc0712_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from (tools/train.py configs/ssd/ssd300_voc0712_dense.py), data_root as in the dense config.
# Made for 8 GPUs x 8 images (tools/dist_train.sh CONFIG 8); the hook sits in default_hooks (a dict) so that
# variants override single fields.
# Not carried over from the demo's val search (docs/results/demo/search_val/: lr 0.02 for every family, SAM
# warm-up rho 0.2): those were chosen for the demo's 6-epoch schedule, and nothing was measured on real VOC.
_base_ = ['../ssd/ssd300_voc0712_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/ssd300_voc0712_dense/epoch_24.pth'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
optim_wrapper = dict(type='SAMOptimWrapper')
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py: warm-up epoch 1, pruning to epoch 4 in 30 steps
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3), adasap=__adasap)
