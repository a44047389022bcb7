# AdaSAP (the method) on RTMDet-tiny, Pascal VOC07+12: prune the VOC-trained dense model to 50% of its FLOPs in
# 12 epochs (a third of the dense fine-tune's 36):
#   phase 1, warm-up   (epoch 1):     ASAM, per-channel radius from the L2 importance (rho_max for the least
#                                     important channel .. rho_min for the most important)
#   phase 2, pruning   (epochs 2-4):  30 HALP-style exponential steps to 50% FLOPs (global L2 ranking) over the
#                                     channel slices of the CSP blocks, the adaptive radius on the channels alive
#   phase 3, fine-tune (epochs 5-12): uniform ASAM (rho 0.5) on the physically pruned network
# The recipe's hooks stay: ExpMomentumEMA (sliced with the model at the physical switch) and the two pipeline
# stages (mosaic off for the last 2 epochs, as the dense run ends). AdamW at the dense peak lr 0.004 after a
# 100-iteration warm-up (the optimizer state starts empty), cosine to 0.0002; not measured on real VOC.
# Then work_dir/pruned.pth holds the physically smaller detector:
#   python tools/test.py configs/pruned/rtmdet-tiny_voc0712_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from (tools/train.py configs/rtmdet/rtmdet-tiny_voc0712_dense.py), data_root as in the dense config.
# Made for 8 GPUs x 32 images (tools/dist_train.sh CONFIG 8).
_base_ = ['../rtmdet/rtmdet-tiny_voc0712_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/rtmdet-tiny_voc0712_dense/epoch_36.pth'

max_epochs = 12
stage2_num_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=2, dynamic_intervals=None)
optim_wrapper = dict(type='SAMOptimWrapper')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.0002, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py: warm-up epoch 1, pruning to epoch 4 in 30 steps
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3), adasap=__adasap)
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - stage2_num_epochs,
         switch_pipeline={{_base_.train_pipeline_stage2}}),
]
