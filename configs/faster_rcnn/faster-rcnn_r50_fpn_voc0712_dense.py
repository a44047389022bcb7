# Faster R-CNN R50-FPN on Pascal VOC07+12 trainval, evaluated on VOC2007 test: mmdet's recipe, unchanged
# (ImageNet-pretrained ResNet-50, frozen stem + stage 1, BN in eval mode). Published Pascal-C reference for
# this model: P 80.5, mPC 48.6, rPC 60.4% (Michaelis et al. 2019).
# Fill in: data_root if your VOCdevkit is not at data/VOCdevkit/.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['mmdet_adasap'], allow_failed_imports=False)
