# The demo detector built at the shapes of a *pruned* checkpoint (tools/prune.py, or PruningHook / AdaSAPHook's
# work_dir/pruned.pth), to evaluate or fine-tune it, on one process or several:
#   python tools/test.py configs/pruned/ssd-r18mini_synthvoc_pruned.py work_dirs/demo_prune/pruned.pth
#   tools/dist_train.sh configs/pruned/ssd-r18mini_synthvoc_pruned.py 2 --cfg-options load_from=pruned.pth
# PrunedDetector builds the dense architecture and re-shapes it to the channel record (the checkpoint's meta,
# or the pruned.channels.json file written beside it) before any wrapper exists; the model is then the
# architecture's own detector. channels=None: this package's tools take it from the checkpoint / load_from;
# with mmdet's own tools pass --cfg-options model.channels=<pruned.pth or pruned.channels.json>. Any config
# becomes pruned-aware with the same three lines.
_base_ = '../demo/ssd-r18mini_synthvoc_dense.py'
model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, channels=None)
