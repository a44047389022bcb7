# AdaSAP (the method) on YOLOX-s, synthetic VOC: the schedule of rtmdet-tiny_synthvoc_adasap_flops50.py (300
# iterations: warm-up 0-74, pruning 75-149 in 4 exponential steps to 50% FLOPs over the CSP layers' split /
# concatenated channel slices and the SPP block's repeated concatenation, uniform-ASAM fine-tune 150-299 on the
# physically pruned network) with YOLOX's own hooks: ExpMomentumEMA, SyncNormHook, and YOLOXModeSwitchHook
# closing mosaic / mixup and adding the L1 loss for the fine-tune epoch. SGD lr 0.005 (half the dense rate),
# cosine to 2.5e-4; not tuned.
# Then: python tools/test.py configs/pruned/yolox-s_synthvoc_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from, the dense checkpoint (tools/train.py configs/yolox/yolox-s_synthvoc_dense.py).
_base_ = ['../yolox/yolox-s_synthvoc_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/yolox-s_synthvoc_dense/epoch_6.pth'

max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(type='SAMOptimWrapper', optimizer=dict(lr=0.005))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2.5e-4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py, phase ends in iterations (see below)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2),
    adasap=dict(__adasap,
                by_epoch=False,  # phase ends in iterations: three phases in two epochs
                warmup=dict(__adasap.warmup, end=75),
                pruning=dict(__adasap.pruning, end=150, schedule=dict(type='exponential', steps=4))))
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=1, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49),
]
