# AdaSAP (the method) on RTMDet-tiny, synthetic VOC: prune the trained dense model to 50% of its FLOPs in 300
# iterations (2 epochs of 150 at batch 8):
#   phase 1, warm-up   (iterations 0-74):    ASAM whose per-channel radius follows the L2 importance, rho_max for
#                                            the least important channel down to rho_min for the most important
#   phase 2, pruning   (iterations 75-149):  4 HALP-style exponential steps down to 50% FLOPs (global L2 ranking)
#                                            over the slices of RTMDet's split / concatenated / re-weighted CSP
#                                            channels, the adaptive radius continuing on the channels still alive
#   phase 3, fine-tune (iterations 150-299): uniform ASAM (rho 0.5) on the physically pruned network
# The recipe's hooks stay: ExpMomentumEMA (sliced with the model at the physical switch) and the two pipeline
# stages, the mosaic for the warm-up and pruning epoch, the plain resize-crop for the fine-tune epoch (the dense
# run ended on it). AdamW lr 0.001 (a quarter of the dense peak), cosine to 5e-5; not tuned.
# Then work_dir/pruned.pth holds the physically smaller detector; evaluate it with
#   python tools/test.py configs/pruned/rtmdet-tiny_synthvoc_pruned.py WORK_DIR/pruned.pth
# Fill in: load_from, the dense checkpoint (tools/train.py configs/rtmdet/rtmdet-tiny_synthvoc_dense.py).
_base_ = ['../rtmdet/rtmdet-tiny_synthvoc_dense.py', '../_base_/adasap/adasap.py']
load_from = 'work_dirs/rtmdet-tiny_synthvoc_dense/epoch_6.pth'

max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(type='SAMOptimWrapper', optimizer=dict(lr=0.001))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=5e-5, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
__adasap = _base_.pop('adasap_hook')  # configs/_base_/adasap/adasap.py, phase ends in iterations (see below)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2),  # every epoch: a run can resume after the physical switch
    adasap=dict(__adasap,
                by_epoch=False,  # phase ends in iterations: three phases in two epochs
                warmup=dict(__adasap.warmup, end=75),
                pruning=dict(__adasap.pruning, end=150, schedule=dict(type='exponential', steps=4))))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=1, switch_pipeline={{_base_.train_pipeline_stage2}}),
]
