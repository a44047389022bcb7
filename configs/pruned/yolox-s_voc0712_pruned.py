# YOLOX-s on Pascal VOC07+12 loaded from a pruned checkpoint (AdaSAPHook's work_dir/pruned.pth, or tools/prune.py):
#   python tools/test.py configs/pruned/yolox-s_voc0712_pruned.py pruned.pth
# See ssd-r18mini_synthvoc_pruned.py for how it works. load_from is cleared: the dense config's COCO weights do
# not fit a pruned model (to fine-tune one: --cfg-options load_from=pruned.pth).
_base_ = '../yolox/yolox-s_voc0712_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
load_from = None
