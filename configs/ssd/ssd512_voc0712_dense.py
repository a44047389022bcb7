# SSD512-VGG16 on Pascal VOC07+12 trainval, evaluated on VOC2007 test: mmdet's recipe, unchanged.
# The paper's detection experiment prunes SSD512 (with a ResNet-50 backbone, as in HALP); this is mmdet's
# VGG16 variant. Fill in: data_root if your VOCdevkit is not at data/VOCdevkit/.
_base_ = 'mmdet::pascal_voc/ssd512_voc0712.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)
