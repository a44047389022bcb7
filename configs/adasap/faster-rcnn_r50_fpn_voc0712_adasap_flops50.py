# AdaSAP (the method) on Faster R-CNN R50-FPN, Pascal VOC07+12: 50% of the dense FLOPs in 4 epochs
# (RepeatDataset x3 each, the dense 1x schedule length). The backbone's stem and stage 1 stay frozen, RPN and
# RoI heads are not pruned (they get the uniform rho); FPN lateral inputs follow the pruned backbone.
#   phase 1, warm-up   (epoch 1):    ASAM, per-channel radius rho_max..rho_min from the L2 importance
#   phase 2, pruning   (epoch 2):    20 HALP-style exponential steps to 50% FLOPs, adaptive radius continuing
#   phase 3, fine-tune (epochs 3-4): uniform ASAM (rho 0.5) on the pruned network
# fork_rng: the perturbed pass replays the same random anchor / RoI samples as the first pass.
# Then work_dir/pruned.pth holds the physically smaller detector:
#   python tools/test.py configs/pruned/faster-rcnn_r50_fpn_voc0712_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from (tools/train.py configs/faster_rcnn/faster-rcnn_r50_fpn_voc0712_dense.py),
# data_root. Made for 8 GPUs x 2 images; the hook sits in default_hooks (a dict) so that variants override
# single fields.
# Not carried over from the demo's val search (docs/results/demo/search_val/: lr 0.02 for every family, SAM
# warm-up rho 0.2): those were chosen for the demo's 6-epoch schedule, and nothing was measured on real VOC.
_base_ = ['../faster_rcnn/faster-rcnn_r50_fpn_voc0712_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/faster-rcnn_r50_fpn_voc0712_dense/epoch_4.pth'

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(type='SAMOptimWrapper', fork_rng=True, optimizer=dict(lr=0.005))
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3], gamma=0.1)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py, here pruning to epoch 2 in 20 steps
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=3),
    adasap=dict(__adasap, pruning=dict(__adasap.pruning, end=2, schedule=dict(type='exponential', steps=20))))
