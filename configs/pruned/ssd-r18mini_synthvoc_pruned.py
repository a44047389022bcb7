# The demo detector loaded from a *pruned* checkpoint (tools/prune.py, or PruningHook's work_dir/pruned.pth):
#   python tools/test.py configs/pruned/ssd-r18mini_synthvoc_pruned.py work_dirs/demo_prune/pruned.pth
# PrunedChannelsHook re-shapes the dense model to the channel counts recorded in the checkpoint's meta right
# before its weights load (no tracing, no re-pruning); dense checkpoints pass through unchanged. The same
# config fine-tunes the pruned model with load_from=<pruned.pth>. Any config becomes "pruned-aware" by adding
# the hook the same way.
_base_ = '../demo/ssd-r18mini_synthvoc_dense.py'
custom_hooks = [dict(type='PrunedChannelsHook')]
