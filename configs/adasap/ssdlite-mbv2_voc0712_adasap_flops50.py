# AdaSAP (the method) on SSDLite-MobileNetV2 (320x320), Pascal VOC07+12: 50% of the dense FLOPs in 24 epochs
# (RepeatDataset x5 each, a fifth of the dense schedule). Depthwise convs are pruned with their producers.
#   phase 1, warm-up   (epochs 1-2):  ASAM, per-channel radius rho_max..rho_min from the L2 importance
#   phase 2, pruning   (epochs 3-8):  30 HALP-style exponential steps to 50% FLOPs, adaptive radius continuing
#   phase 3, fine-tune (epochs 9-24): uniform ASAM (rho 0.5) on the pruned network
# Then work_dir/pruned.pth holds the physically smaller detector:
#   python tools/test.py configs/pruned/ssdlite-mbv2_voc0712_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from (tools/train.py configs/ssd/ssdlite-mbv2_voc0712_dense.py), data_root.
# Made for 8 GPUs x 24 images; the hook sits in default_hooks (a dict) so that variants override single fields.
_base_ = ['../ssd/ssdlite-mbv2_voc0712_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/ssdlite-mbv2_voc0712_dense/epoch_120.pth'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(type='SAMOptimWrapper', optimizer=dict(lr=0.005))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py, here warm-up to epoch 2, pruning to epoch 8
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=3),
    adasap=dict(__adasap, warmup=dict(__adasap.warmup, end=2), pruning=dict(__adasap.pruning, end=8)))
