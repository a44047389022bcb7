# AdaSAP (the method) on YOLOX-s, Pascal VOC07+12: prune the VOC-trained dense model to 50% of its FLOPs in 12
# epochs (a third of the dense fine-tune's 36): warm-up epoch 1 (adaptive-radius ASAM), pruning epochs 2-4 (30
# exponential steps, global L2, over the CSP layers' split / concatenated channel slices and the SPP block's
# repeated concatenation), uniform-ASAM fine-tune epochs 5-12 on the physically pruned network.
# YOLOX's hooks stay: ExpMomentumEMA, SyncNormHook, YOLOXModeSwitchHook (mosaic / mixup off and the L1 loss on
# for the last 2 epochs, as the dense run ends). SGD at the dense peak lr 0.01 after a 100-iteration warm-up,
# cosine to 0.0005; not measured on real VOC.
# Then: python tools/test.py configs/pruned/yolox-s_voc0712_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from (tools/train.py configs/yolox/yolox-s_voc0712_dense.py), data_root as in the dense config.
# Made for 8 GPUs x 8 images (tools/dist_train.sh CONFIG 8).
_base_ = ['../yolox/yolox-s_voc0712_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/yolox-s_voc0712_dense/epoch_36.pth'

max_epochs = 12
num_last_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=2, dynamic_intervals=None)
optim_wrapper = dict(type='SAMOptimWrapper')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.0005, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py: warm-up epoch 1, pruning to epoch 4 in 30 steps
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3), adasap=__adasap)
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49),
]
