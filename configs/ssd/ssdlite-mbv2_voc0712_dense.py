# SSDLite-MobileNetV2 (320x320, from scratch) on Pascal VOC07+12 trainval, evaluated on VOC2007 test.
# mmdet ships this model for COCO only; the model and pipelines are mmdet's, the data and schedule are
# VOC's (20 classes, VOC07 11-point AP50, 120 epochs over RepeatDataset x5).
# Fill in: data_root if your VOCdevkit is not at data/VOCdevkit/.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
model = dict(bbox_head=dict(num_classes=20))

voc_trainval = [
    dict(type=dataset_type, data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root=f'{year}/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
         pipeline={{_base_.train_pipeline}}) for year in ('VOC2007', 'VOC2012')
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='RepeatDataset', times=5,
                 dataset=dict(type='ConcatDataset', ignore_keys=['dataset_type'], datasets=voc_trainval)))
val_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs, by_epoch=True, eta_min=0),
]
