"""``PrunedChannelsHook``: load pruned checkpoints into a config's dense model (``tools/test.py``, ``load_from``).

The checkpoint format and the re-shaping live in :mod:`mmdet_adasap.pruning.export`; this hook only calls
:func:`~mmdet_adasap.pruning.export.apply_channel_config` at the moment mmengine needs it.
"""
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet_adasap.pruning.export import META_KEY, apply_channel_config


@HOOKS.register_module()
class PrunedChannelsHook(Hook):
    """Re-shapes the runner's model to a pruned checkpoint's channels right before its weights load.

    mmengine calls ``after_load_checkpoint`` between reading a checkpoint and loading it into the model, for
    ``load_from``, ``resume`` and ``tools/test.py``. Dense checkpoints pass through untouched. The model must
    not be wrapped by DDP when its shapes change (DDP has bucketed the old shapes), so multi-GPU fine-tuning
    from a pruned checkpoint is refused with a clear error; single-process training and testing work.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        config = checkpoint.get('meta', {}).get(META_KEY)
        if not config:
            return
        model = runner.model
        if is_model_wrapper(model):
            if isinstance(model, torch.nn.parallel.DistributedDataParallel):
                raise RuntimeError('PrunedChannelsHook cannot re-shape a model already wrapped by DDP; '
                                   'load the pruned checkpoint in a single process (tools/test.py) or '
                                   're-shape the model before wrapping')
            model = model.module
        apply_channel_config(model, config)
        runner.logger.info(f'PrunedChannelsHook: re-shaped {len(config)} layers to the pruned checkpoint')
