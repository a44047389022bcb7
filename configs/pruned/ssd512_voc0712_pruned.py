# SSD512-VGG16 loaded from a pruned checkpoint (AdaSAPHook's work_dir/pruned.pth, or tools/prune.py):
#   python tools/test.py configs/pruned/ssd512_voc0712_pruned.py pruned.pth
# See ssd-r18mini_synthvoc_pruned.py for how it works.
_base_ = '../ssd/ssd512_voc0712_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
