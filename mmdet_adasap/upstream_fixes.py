"""Workarounds for upstream breakage, applied once on ``import mmdet_adasap``.

Each fix is small, idempotent and says which upstream problem it works around. Nothing here changes
behaviour that works upstream.
"""
import builtins

import numpy as np
import torch


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (torch >= 2.6's default) read mmengine checkpoints.

    mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; its checkpoints hold a MessageHub state
    (``HistoryBuffer`` objects with numpy arrays, numpy scalars, and the buffer's statistics methods, which
    pickle as ``getattr(HistoryBuffer, 'mean')``). Rather than switching ``weights_only`` off (which would
    execute arbitrary pickles from any downloaded checkpoint) we allow exactly these classes. ``getattr`` is
    safe here: the weights-only unpickler still refuses to *call* anything not allow-listed, so it can only
    fetch attributes of allow-listed classes.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [
        HistoryBuffer, builtins.getattr, np.ndarray, np.dtype,
        np._core.multiarray._reconstruct, np._core.multiarray.scalar,
    ]
    # numpy >= 1.25 may pickle dtypes through their concrete classes (np.dtypes.Float64DType, ...)
    safe += [cls for cls in vars(np.dtypes).values() if isinstance(cls, type)]
    torch.serialization.add_safe_globals(safe)


def give_ssd_head_a_loss_cls() -> None:
    """mmdet 3.3.0: ``SSDHead`` skips ``AnchorHead.__init__`` so it never sets ``loss_cls``, yet
    ``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls`` -> every SSD val/test crashes
    (mmdetection issues #11063, #11305, #11780). SSD's classification loss is built into ``loss_by_feat``
    (softmax CE with hard negative mining), so ``None`` is the faithful value: predict then takes the
    softmax branch chosen by ``use_sigmoid_cls=False``, exactly as SSD intends.
    """
    from mmdet.models.dense_heads import SSDHead
    if getattr(SSDHead.__init__, '_adasap_fixed', False):
        return
    original_init = SSDHead.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None

    __init__._adasap_fixed = True
    __init__.__wrapped__ = original_init
    SSDHead.__init__ = __init__


def let_mmengine_ddp_run_on_cpu() -> None:
    """mmengine 0.10.7's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its DDP wrapping passes
    ``device_ids=[LOCAL_RANK]``, which torch refuses for CPU modules, so ``dist_train.sh`` cannot run without
    GPUs (e.g. multi-process CPU training, or CI). Without CUDA we initialise the process group with gloo and
    wrap CPU modules with ``device_ids=None``; with CUDA nothing changes.
    """
    import torch.distributed as torch_dist
    from mmengine.dist import utils as dist_utils
    from mmengine.model import MMDistributedDataParallel
    if getattr(dist_utils._init_dist_pytorch, '_adasap_fixed', False):
        return
    original_init_dist = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original_init_dist(backend, init_backend=init_backend, **kwargs)
        torch_dist.init_process_group(backend='gloo' if backend == 'nccl' else backend, **kwargs)

    _init_dist_pytorch._adasap_fixed = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch

    original_ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs['device_ids'] = None
        original_ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


def apply_all() -> None:
    allow_mmengine_checkpoint_globals()
    give_ssd_head_a_loss_cls()
    let_mmengine_ddp_run_on_cpu()
