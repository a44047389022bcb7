# SSD300-VGG16 on Pascal VOC07+12 trainval, evaluated on VOC2007 test: mmdet's recipe, unchanged
# (ImageNet-pretrained VGG16, 24 epochs x RepeatDataset 10). The dense model that AdaSAP configs prune.
# Fill in: data_root if your VOCdevkit is not at data/VOCdevkit/ (--cfg-options or edit below).
_base_ = 'mmdet::pascal_voc/ssd300_voc0712.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)
