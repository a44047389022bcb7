# YOLOX-s (mmdet's architecture: CSPDarknet with SPP, YOLOX-PAFPN, decoupled head) trained from scratch on the
# shipped synthetic VOC set at 256x256: the dense starting point of the YOLOX AdaSAP configs
# (configs/adasap/yolox-s_synthvoc_*). Nothing to fill in.
# What differs from mmdet's COCO recipe (yolox_s_8xb8-300e_coco.py), and why:
#   - input 256 rather than 640 (the synthetic images are 224-320 px), and the multi-scale batch resize scaled
#     with it: 192-320 (the recipe's 480-800 around 640)
#   - 6 classes; the data are the synthetic VOC07+12 trainval inside the recipe's MultiImageMixDataset
#   - the same augmentation (Mosaic, RandomAffine, MixUp, closed with the L1 loss switched on by
#     YOLOXModeSwitchHook for the last 2 of 6 epochs), SyncNormHook and ExpMomentumEMA, on a 6-epoch schedule
#     (900 iterations at batch 8)
#   - SGD lr 0.01 at batch 8: the recipe's per-step rate (set for 64 images) rather than 1/8 of it, so that a
#     900-iteration run from scratch moves at all; not tuned
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)

input_size = 256
img_scale = (input_size, input_size)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchSyncRandomResize', random_size_range=(192, 320), size_divisor=32, interval=10)]),
    bbox_head=dict(num_classes=6),
    test_cfg=dict(nms_pre=1000, max_per_img=100))

dataset_type = 'SyntheticVOCDataset'
data_root = 'data/synthetic_voc/VOCdevkit/'
backend_args = None
train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0),
    dict(type='RandomAffine', scaling_ratio_range=(0.1, 2), border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    dict(type='MixUp', img_scale=img_scale, ratio_range=(0.8, 1.6), pad_val=114.0),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(_delete_=True, type='MultiImageMixDataset', pipeline=train_pipeline, dataset=dict(
        type='ConcatDataset', ignore_keys=['dataset_type'], datasets=[
            dict(type=dataset_type, data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root=f'{year}/'), filter_cfg=dict(filter_empty_gt=False, min_size=32),
                 pipeline=[dict(type='LoadImageFromFile', backend_args=backend_args),
                           dict(type='LoadAnnotations', with_bbox=True)],
                 backend_args=backend_args) for year in ('VOC2007', 'VOC2012')])))
val_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline=test_pipeline,
                 backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

max_epochs = 6
num_last_epochs = 2
base_lr = 0.01
train_cfg = dict(max_epochs=max_epochs, val_interval=3)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [  # the recipe's shape: quadratic warm-up, cosine, constant while the mosaic is off
    dict(type='mmdet.QuadraticWarmupLR', by_epoch=False, begin=0, end=150),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=1, T_max=max_epochs - num_last_epochs - 1,
         end=max_epochs - num_last_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='ConstantLR', by_epoch=True, factor=1, begin=max_epochs - num_last_epochs, end=max_epochs),
]
default_hooks = dict(checkpoint=dict(interval=3, max_keep_ckpts=2, save_best='auto'),
                     logger=dict(type='LoggerHook', interval=25))
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49),
]
env_cfg = dict(cudnn_benchmark=False)
auto_scale_lr = dict(enable=False, base_batch_size=8)
