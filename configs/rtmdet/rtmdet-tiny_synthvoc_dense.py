# RTMDet-tiny (mmdet's architecture: CSPNeXt with channel attention, CSPNeXt-PAFPN, shared-conv separate-BN
# head) trained from scratch on the shipped synthetic VOC set at 256x256: the dense starting point of the
# RTMDet AdaSAP configs (configs/adasap/rtmdet-tiny_synthvoc_*). Nothing to fill in.
# What differs from mmdet's COCO recipe (rtmdet_tiny_8xb32-300e_coco.py), and why:
#   - input 256 rather than 640: the synthetic images are 224-320 px; 256 is the largest multiple of the
#     head's stride 32 that does not upsample most of them, and a 256 px batch costs ~1/6 of a 640 px one on CPU
#   - BN rather than SyncBN (one CPU process), no ImageNet-pretrained backbone (offline, from scratch), 6 classes
#   - the same two pipeline stages (CachedMosaic + CachedMixUp, then plain random resize-crop, switched by
#     PipelineSwitchHook) and the same ExpMomentumEMA, on a 6-epoch schedule (900 iterations): the last 2
#     epochs without mosaic rather than the recipe's last 1/15, so that a short run ends on undistorted images
#   - batch 8, AdamW lr 0.004 (the recipe's rate, not scaled down 32x with the batch: Adam's step size does
#     not grow with the batch, and a from-scratch run of 900 iterations needs the full rate; not tuned)
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)

input_size = 256
norm_cfg = dict(type='BN')
model = dict(
    backbone=dict(norm_cfg=norm_cfg, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(num_classes=6, norm_cfg=norm_cfg),
    test_cfg=dict(nms_pre=1000, max_per_img=100))

dataset_type = 'SyntheticVOCDataset'
data_root = 'data/synthetic_voc/VOCdevkit/'
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=(input_size, input_size), pad_val=114.0, max_cached_images=20,
         random_pop=False),
    dict(type='RandomResize', scale=(input_size * 2, input_size * 2), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(input_size, input_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='CachedMixUp', img_scale=(input_size, input_size), ratio_range=(1.0, 1.0), max_cached_images=10,
         random_pop=False, pad_val=(114, 114, 114), prob=0.5),
    dict(type='PackDetInputs'),
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(input_size, input_size), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(input_size, input_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='Pad', size=(input_size, input_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True, pin_memory=False,
    dataset=dict(_delete_=True, type='ConcatDataset', ignore_keys=['dataset_type'], datasets=[
        dict(type=dataset_type, data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root=f'{year}/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
             pipeline=train_pipeline, backend_args=backend_args) for year in ('VOC2007', 'VOC2012')]))
val_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline=test_pipeline,
                 backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

max_epochs = 6
stage2_num_epochs = 2
base_lr = 0.004
train_cfg = dict(max_epochs=max_epochs, val_interval=3, dynamic_intervals=None)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [  # the recipe's shape: linear warm-up, flat, cosine over the second half
    dict(type='LinearLR', start_factor=1.0e-3, by_epoch=False, begin=0, end=150),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=3, max_keep_ckpts=2, save_best='auto'),
                     logger=dict(type='LoggerHook', interval=25))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - stage2_num_epochs,
         switch_pipeline=train_pipeline_stage2),
]
env_cfg = dict(cudnn_benchmark=False)
auto_scale_lr = dict(enable=False, base_batch_size=8)
