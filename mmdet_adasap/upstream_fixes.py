"""Workarounds for upstream breakage, applied once on ``import mmdet_adasap``.

Each fix is small, idempotent and says which upstream problem it works around. Nothing here changes
behaviour that works upstream.
"""
import pickle
import types

import numpy as np
import torch


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (torch >= 2.6's default) read mmengine checkpoints.

    mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; its checkpoints hold a MessageHub state
    (``HistoryBuffer`` objects with numpy arrays, numpy scalars, and the buffer's statistics methods, which
    pickle as ``getattr(HistoryBuffer, 'mean')``). Rather than switching ``weights_only`` off (which would
    execute arbitrary pickles from any downloaded checkpoint) we allow exactly these classes, and in place of
    ``builtins.getattr`` only :func:`history_buffer_getattr`: a plain ``getattr`` would let a hostile file walk
    from an allowed class to any object (``getattr.__self__`` is the builtins module, a function's
    ``__globals__`` a module's namespace, which the unpickler may then write into).
    """
    from mmengine.logging.history_buffer import HistoryBuffer  # the patched upstream class, imported when the fix runs
    safe = [
        HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'), np.ndarray, np.dtype,
        np._core.multiarray._reconstruct, np._core.multiarray.scalar,
    ]
    # numpy >= 1.25 may pickle dtypes through their concrete classes (np.dtypes.Float64DType, ...)
    safe += [cls for cls in vars(np.dtypes).values() if isinstance(cls, type)]
    torch.serialization.add_safe_globals(safe)


def history_buffer_getattr(obj, name):
    """``getattr`` as the weights-only unpickler sees it: only the public methods defined on
    ``HistoryBuffer`` itself (its statistics ``min``/``max``/``mean``/``current``...); anything else is refused."""
    from mmengine.logging.history_buffer import HistoryBuffer  # the patched upstream class, imported when the fix runs
    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and isinstance(vars(HistoryBuffer).get(name), types.FunctionType)):
        return getattr(obj, name)
    shown = 'getattr' if obj is history_buffer_getattr else repr(obj)
    raise pickle.UnpicklingError(
        f'weights-only load refused getattr({shown}, {name!r}): mmdet_adasap allows getattr only for '
        'HistoryBuffer statistics methods; a checkpoint that needs more is not a plain mmengine checkpoint '
        '(load it with weights_only=False only if you trust its source)')


def name_the_checkpoint_in_load_errors() -> None:
    """mmengine's local checkpoint loader passes torch's errors through, and torch's do not name the file: a
    truncated download reads "PytorchStreamReader failed reading zip archive: failed finding central directory".
    Re-raise the same error type with the path in front (and a hint for the truncated case)."""
    from mmengine.runner.checkpoint import CheckpointLoader  # the patched upstream class, imported when the fix runs
    current = CheckpointLoader._schemes.get('')
    if getattr(current, '_adasap_fixed', False):
        return

    def load_from_local(filename, map_location):
        try:
            return current(filename, map_location)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
            raise checkpoint_error(filename, err) from err

    load_from_local._adasap_fixed = True
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def checkpoint_error(path: str, err: Exception) -> Exception:
    """``err`` (same type) with the checkpoint's path and, for a truncated/corrupt file, what to do."""
    text = str(err)
    if ('central directory' in text or 'zip archive' in text or isinstance(err, EOFError)) and 'corrupt' not in text:
        text += ' (the file is truncated or not a torch checkpoint: was its download or save interrupted? ' \
                'download / save it again)'
    try:
        return type(err)(f'cannot read checkpoint {path!r}: {text}')
    except TypeError:  # an error type with a different constructor
        return RuntimeError(f'cannot read checkpoint {path!r}: {text}')


def give_ssd_head_a_loss_cls() -> None:
    """mmdet 3.3.0: ``SSDHead`` skips ``AnchorHead.__init__`` so it never sets ``loss_cls``, yet
    ``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls`` -> every SSD val/test crashes
    (mmdetection issues #11063, #11305, #11780). SSD's classification loss is built into ``loss_by_feat``
    (softmax CE with hard negative mining), so ``None`` is the faithful value: predict then takes the
    softmax branch chosen by ``use_sigmoid_cls=False``, exactly as SSD intends.
    """
    from mmdet.models.dense_heads import SSDHead  # the patched upstream class, imported when the fix runs
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
    import torch.distributed as torch_dist  # the patched upstream modules, imported when the fix runs
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


def switch_pipelines_inside_dataset_wrappers() -> None:
    """mmdet 3.3.0's ``PipelineSwitchHook`` (RTMDet's second training stage) assigns
    ``train_loader.dataset.pipeline``. When the training set is a dataset wrapper (``ConcatDataset`` of
    VOC2007 + VOC2012, ``RepeatDataset``) that attribute is read by nothing: the switch is logged but every image
    still goes through the mosaic pipeline. After the hook's own switch we give every dataset inside the
    wrappers the new pipeline; a plain dataset (mmdet's COCO configs) is switched exactly as before.
    """
    from mmcv.transforms import Compose  # the patched upstream class and what it builds, imported when the fix runs
    from mmdet.engine.hooks import PipelineSwitchHook
    if getattr(PipelineSwitchHook.before_train_epoch, '_adasap_fixed', False):
        return
    original = PipelineSwitchHook.before_train_epoch

    def before_train_epoch(self, runner):
        switched_before, top = self._has_switched, runner.train_dataloader.dataset
        owners = pipeline_owners(top)  # before the hook gives the wrapper a pipeline attribute of its own
        original(self, runner)
        if self._has_switched and not switched_before and owners != [top]:
            for dataset in owners:
                dataset.pipeline = Compose(self.switch_pipeline)

    before_train_epoch._adasap_fixed = True
    before_train_epoch.__wrapped__ = original
    PipelineSwitchHook.before_train_epoch = before_train_epoch


def pipeline_owners(dataset) -> list:
    """The datasets whose own pipeline a sample of ``dataset`` goes through: ``dataset`` itself when it has a
    pipeline (a plain dataset, ``MultiImageMixDataset``), else those inside its wrapper (``datasets`` of a
    concatenation, ``dataset`` of a repeat or class-balanced wrapper), recursively."""
    if hasattr(dataset, 'pipeline'):
        return [dataset]
    inner = getattr(dataset, 'datasets', None) or ([dataset.dataset] if hasattr(dataset, 'dataset') else [])
    return [owner for d in inner for owner in pipeline_owners(d)]


def order_torch_pruning_split_outputs() -> None:
    """torch-pruning 1.6.0 maps the i-th piece of a ``torch.split`` / ``chunk`` to the i-th consumer in the order
    its graph builder *discovered* the consumers (tracing back from the outputs), not to the consumer of piece
    i. With ``q(y1) + r(y2)`` it gives ``r`` the first piece's channels: a group that prunes channel 5 of the
    producer removes an input column of the wrong consumer (or one beyond its width). Before torch-pruning
    builds the split's index mapping, its consumers are put in piece order, read off each consumer's autograd
    edge to the split (``output_nr``); a consumer that takes several pieces, or none visibly, leaves the order
    as it is.
    """
    from torch_pruning.dependency import index_mapping  # the patched upstream module, imported when the fix runs
    original = index_mapping.update_split_index_mapping
    if getattr(original, '_adasap_fixed', False):
        return

    def update_split_index_mapping(graph, split_node):
        pieces = [_piece_of(out, split_node.grad_fn) for out in split_node.outputs]
        if split_node.grad_fn is not None and None not in pieces and len(set(pieces)) == len(pieces):
            split_node.outputs = [out for _, out in sorted(zip(pieces, split_node.outputs), key=lambda t: t[0])]
        return original(graph, split_node)

    update_split_index_mapping._adasap_fixed = True
    update_split_index_mapping._adasap_original = original  # for the test that shows the problem is real
    index_mapping.update_split_index_mapping = update_split_index_mapping  # looked up at call time


def _piece_of(node, split_fn):
    """Which output of the split autograd node ``split_fn`` feeds ``node`` (None if not exactly one)."""
    edges = {nr for fn, nr in getattr(node.grad_fn, 'next_functions', ()) if fn is split_fn}
    return edges.pop() if len(edges) == 1 else None


#: mmengine's notices about its own deprecated file API, which every run triggers without using that API
_FILE_API_NOTICES = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias of "LocalBackend"')


def quiet_mmengine_file_client_notices() -> None:
    """mmengine 0.10.7's ``CheckpointHook.before_train`` (and ``LoggerHook``) build a deprecated ``FileClient``
    "to avoid breaking backward compatibility" even when no ``file_client_args`` is given, so every training
    run logs two warnings ("FileClient" will be deprecated, "HardDiskBackend" is the alias of "LocalBackend")
    about an API the user never called and cannot avoid. Those two notices only are dropped; a config that does
    pass ``file_client_args`` still gets mmengine's own ``DeprecationWarning`` for it.
    """
    from mmengine.fileio import file_client  # the patched upstream module, imported when the fix runs
    original = file_client.print_log
    if getattr(original, '_adasap_fixed', False):
        return

    def print_log(msg, *args, **kwargs):
        if isinstance(msg, str) and msg.startswith(_FILE_API_NOTICES):
            return None
        return original(msg, *args, **kwargs)

    print_log._adasap_fixed = True
    print_log._adasap_original = original  # for the test that shows the problem is real
    file_client.print_log = print_log


def apply_all() -> None:
    allow_mmengine_checkpoint_globals()
    name_the_checkpoint_in_load_errors()
    give_ssd_head_a_loss_cls()
    let_mmengine_ddp_run_on_cpu()
    switch_pipelines_inside_dataset_wrappers()
    order_torch_pruning_split_outputs()
    quiet_mmengine_file_client_notices()
