# SSD300-VGG16 loaded from a pruned checkpoint (built at its pruned shapes; see
# ssd-r18mini_synthvoc_pruned.py for how it works):
#   python tools/test.py configs/pruned/ssd300_voc0712_pruned.py pruned.pth
_base_ = '../ssd/ssd300_voc0712_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
