# YOLOX-s on Pascal VOC07+12 trainval, evaluated on VOC2007 test (VOC07 11-point AP50), fine-tuned from mmdet's
# COCO-trained YOLOX-s (load_from below; the 80-class classifier convs do not fit 20 classes and start fresh,
# everything else is COCO's). The model, the 640x640 pipeline (Mosaic, RandomAffine, MixUp inside
# MultiImageMixDataset, multi-scale batches 480-800), SGD, SyncNormHook and ExpMomentumEMA are mmdet's
# yolox_s_8xb8-300e_coco.py; the schedule is scaled from 300 COCO epochs to a 36-epoch fine-tune:
#   quadratic warm-up over the first epoch (the recipe's 5 of 300), cosine from lr 0.01 to 0.0005 until
#   epoch 32, then constant with mosaic / mixup off and the L1 loss on (YOLOXModeSwitchHook) for the last 4
#   epochs (the recipe's last 15 of 300, rounded up); val every 4 epochs, then every epoch once the mosaic is off.
# Made for 8 GPUs x 8 images (tools/dist_train.sh CONFIG 8): ~259 iterations per epoch over the 16551 images.
# With fewer images per step pass --auto-scale-lr (base 64 images). Fill in: data_root if your VOCdevkit is not
# at data/VOCdevkit/.
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/yolox/yolox_s_8x8_300e_coco/yolox_s_8x8_300e_coco_20211121_095711-4592a793.pth'  # noqa

model = dict(bbox_head=dict(num_classes=20))

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
voc_trainval = [
    dict(type=dataset_type, data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root=f'{year}/'), filter_cfg=dict(filter_empty_gt=False, min_size=32),
         pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)])
    for year in ('VOC2007', 'VOC2012')
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='MultiImageMixDataset', pipeline={{_base_.train_pipeline}},
                 dataset=dict(type='ConcatDataset', ignore_keys=['dataset_type'], datasets=voc_trainval)))
val_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

max_epochs = 36
num_last_epochs = 4
base_lr = 0.01
train_cfg = dict(max_epochs=max_epochs, val_interval=4, dynamic_intervals=[(max_epochs - num_last_epochs, 1)])
param_scheduler = [
    dict(type='mmdet.QuadraticWarmupLR', by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=1, T_max=max_epochs - num_last_epochs - 1,
         end=max_epochs - num_last_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='ConstantLR', by_epoch=True, factor=1, begin=max_epochs - num_last_epochs, end=max_epochs),
]
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=3, save_best='auto'))
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49),
]
