# RTMDet-s on Pascal VOC07+12 trainval, evaluated on VOC2007 test (VOC07 11-point AP50), fine-tuned from
# mmdet's COCO-trained RTMDet-s (load_from below; the 80-class classifier convs do not fit 20 classes and
# start fresh, everything else is COCO's). The model, the 640x640 pipelines (CachedMosaic + CachedMixUp, then
# plain random resize-crop switched by PipelineSwitchHook), AdamW and ExpMomentumEMA are mmdet's
# rtmdet_s_8xb32-300e_coco.py; the schedule is scaled from 300 COCO epochs to a 36-epoch fine-tune:
#   warm-up 200 iterations (the recipe's 1000 would be 3 of the 36 epochs), flat lr 0.004 to epoch 18, cosine to
#   0.0002 at epoch 36 (the recipe's half-flat, half-cosine shape), mosaic off for the last 4 epochs (the
#   recipe's last 20 of 300, rounded up); val every 4 epochs, then every epoch once the mosaic is off.
# Made for 8 GPUs x 32 images (tools/dist_train.sh CONFIG 8): ~65 iterations per epoch over the 16551 images.
# With fewer images per step pass --auto-scale-lr (base 256 images). Fill in: data_root if your VOCdevkit is
# not at data/VOCdevkit/.
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)
load_from = 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_s_8xb32-300e_coco/rtmdet_s_8xb32-300e_coco_20220905_161602-387a891e.pth'  # noqa

model = dict(backbone=dict(init_cfg=None),  # no ImageNet download: load_from covers the backbone
             bbox_head=dict(num_classes=20))

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
voc_trainval = [
    dict(type=dataset_type, data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root=f'{year}/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
         pipeline={{_base_.train_pipeline}}) for year in ('VOC2007', 'VOC2012')
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ConcatDataset', ignore_keys=['dataset_type'], datasets=voc_trainval))
val_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

max_epochs = 36
stage2_num_epochs = 4
base_lr = 0.004
train_cfg = dict(max_epochs=max_epochs, val_interval=4, dynamic_intervals=[(max_epochs - stage2_num_epochs, 1)])
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0e-5, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=3, save_best='auto'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - stage2_num_epochs,
         switch_pipeline={{_base_.train_pipeline_stage2}}),
]
auto_scale_lr = dict(enable=False, base_batch_size=256)  # 8 GPUs x 32 images (mmdet's base leaves it at 16)
