# RTMDet-tiny (synthetic VOC) loaded from a pruned checkpoint (AdaSAPHook's work_dir/pruned.pth, or
# tools/prune.py), built at its pruned shapes:
#   python tools/test.py configs/pruned/rtmdet-tiny_synthvoc_pruned.py work_dirs/<run>/pruned.pth
# See ssd-r18mini_synthvoc_pruned.py for how it works.
_base_ = '../rtmdet/rtmdet-tiny_synthvoc_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
