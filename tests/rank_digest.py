"""A hook for the multi-process tests (imported by their configs): each rank writes the digest of its weights
(``params``) and of its whole state (``digest``: with the BN running statistics, which mmengine's DDP leaves
per rank, ``broadcast_buffers=False``)."""
import json
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from helpers import state_digest


@HOOKS.register_module()
class RankDigestHook(Hook):
    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        with open(osp.join(runner.work_dir, f'rank{runner.rank}.json'), 'w') as f:
            json.dump(dict(digest=state_digest(model.state_dict()),
                           params=state_digest(dict(model.named_parameters())), iter=runner.iter), f)
