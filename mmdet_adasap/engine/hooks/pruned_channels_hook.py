"""``PrunedChannelsHook``: retired; pruned checkpoints load into a pruned config's ``PrunedDetector``."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class PrunedChannelsHook(Hook):
    """Refused with the way that replaces it (a config name that still parses must say what to do)."""

    def __init__(self, *args, **kwargs):
        raise ValueError("PrunedChannelsHook is retired: a pruned checkpoint loads into a config whose model is "
                         "built at the pruned shapes: model = dict(_delete_=True, type='PrunedDetector', "
                         "architecture={{_base_.model}}, channels=<pruned.pth or its .channels.json>) (see "
                         "configs/pruned/); remove PrunedChannelsHook from custom_hooks")
