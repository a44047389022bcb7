"""``ChannelRecordHook``: a pruned detector's channel record in every checkpoint, and no half-loaded models.

Added to every Runner of a run that imports the plugin (:mod:`mmdet_adasap.engine.plugin_hooks`). Before a
checkpoint is saved it writes the model's channel record (a ``PrunedDetector``, or a model pruned physically
in training) into ``meta['adasap_channels']``, so that every checkpoint of a pruned model names its shapes.
When mmengine loads a checkpoint (``load_from``, ``resume``, ``tools/test.py``) it refuses, before any weight
is copied, a checkpoint whose shapes do not fit where either side is pruned
(:func:`~mmdet_adasap.apis.check_checkpoint_fits`): a pruned checkpoint in the dense config's model would
otherwise load with size-mismatch warnings and be evaluated half-loaded.
"""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet_adasap.apis.model import check_checkpoint_fits
from mmdet_adasap.models.pruned_detector import channel_record_of
from mmdet_adasap.pruning.export import META_KEY


@HOOKS.register_module()
class ChannelRecordHook(Hook):
    """Writes the channel record into checkpoints; refuses checkpoints whose shapes do not fit the model."""
    priority = 'LOW'  # after PruningHook re-shapes a run resumed after its physical switch

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        record = channel_record_of(self._model(runner))
        if record:
            checkpoint.setdefault('meta', {})[META_KEY] = record

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        source = runner.cfg.get('load_from') or 'the checkpoint'
        check_checkpoint_fits(self._model(runner), checkpoint, source, getattr(runner.cfg, 'filename', None))
