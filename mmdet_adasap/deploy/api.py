"""Export a config + checkpoint (dense or pruned) to ONNX and check it against PyTorch: what the tools call."""
import copy
import math
import os
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmdet.registry import DATASETS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules

from ..apis import build_detector, find_resize_shape
from .kept_sets import Detections, judge_kept
from .onnx_detector import make_session
from .onnx_export import DEFAULT_OPSET, export_onnx, read_metadata, with_pre_nms_outputs
from .parity import TOLERANCE, ParityReport, Tolerance, compare_pre_nms, level_cuts
from .pre_nms import pytorch_pre_nms


def default_input_hw(cfg, model) -> Tuple[int, int]:
    """The test pipeline's Resize scale (H, W), rounded up to the preprocessor's pad_size_divisor (a
    keep-ratio scale bounds every resized image, so the padded canvas holds each of them)."""
    shape = find_resize_shape(cfg)
    if shape is None:
        raise ValueError('the config\'s test pipeline has no Resize scale: pass --input-size H [W]')
    divisor = getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1
    return tuple(int(math.ceil(v / divisor) * divisor) for v in shape[2:])


def export_detector(cfg, checkpoint: Optional[str], out_file: str, batch: Union[int, str] = 1,
                    opset: int = DEFAULT_OPSET, input_hw: Optional[Sequence[int]] = None):
    """``(PyTorch model, metadata)`` after exporting the config's model with ``checkpoint`` to ``out_file``."""
    model, _ = build_detector(cfg, checkpoint)
    hw = tuple(input_hw) if input_hw else default_input_hw(cfg, model)
    meta = export_onnx(model, out_file, hw, batch=batch, opset=opset,
                       metadata=dict(config=getattr(cfg, 'filename', None), checkpoint=checkpoint))
    return model, meta


def _preprocessed(model, images: torch.Tensor) -> dict:
    h, w = images.shape[-2:]
    samples = [DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.),
                                           pad_shape=(h, w), batch_input_shape=(h, w))) for _ in images]
    return model.data_preprocessor(dict(inputs=list(images), data_samples=samples), False)


@torch.no_grad()
def pytorch_predictions(model, images: torch.Tensor):
    """mmdet's own test path (data preprocessor + ``predict``, boxes in input pixels) for raw BGR images."""
    data = _preprocessed(model, images)
    return [r.pred_instances for r in model.predict(data['inputs'], data['data_samples'], rescale=False)]


def _run_onnx(onnx_file: str, images: np.ndarray, threads: Optional[int]) -> dict:
    """The graph's ``dets``, ``labels`` and pre-NMS tensors (by short name) for ``images``, in chunks of the
    exported batch size."""
    meta = read_metadata(onnx_file)
    session = make_session(with_pre_nms_outputs(onnx_file), threads)
    names = ['dets', 'labels'] + list(meta['pre_nms'].values())
    size = len(images) if meta['batch'] == 'dynamic' else meta['batch']
    if len(images) % size:
        raise ValueError(f'{onnx_file!r} has a fixed batch of {size}: check parity on a multiple of it, not '
                         f'{len(images)} images')
    chunks = [session.run(names, {'input': images[i:i + size]}) for i in range(0, len(images), size)]
    out = [np.concatenate(parts) for parts in zip(*chunks)]
    return dict(dets=out[0], labels=out[1], pre_nms=dict(zip(meta['pre_nms'], out[2:])))


def _selection_context(ref_pre: dict, post: dict, batch: int):
    """Per image, the per-level ``nms_pre`` cut-off scores and the (boxes, per-class scores) the kept
    detections are selected from, from PyTorch's pre-NMS tensors (none for Faster R-CNN, whose detections come
    from its second stage)."""
    if 'scores' not in ref_pre:
        return np.full((batch, 0), np.nan), None
    cuts = level_cuts(ref_pre['scores'], post['level_sizes'], post['nms_pre'])
    scores = ref_pre['scores'] * ref_pre['objectness'][..., None] if 'objectness' in ref_pre \
        else ref_pre['scores']  # YOLOX: class score x objectness
    return cuts, (ref_pre['boxes'], scores)


def _dataset_cfg(cfg):
    """The config's test dataset (val's when there is no test dataloader) and which one it is."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key) if cfg is not None else None
        if loader and loader.get('dataset'):
            return loader['dataset'], key
    return None, None


def dataset_leaf(dataset_cfg) -> dict:
    """The first plain dataset inside wrappers (``ConcatDataset``'s ``datasets``, ``RepeatDataset``'s
    ``dataset``)."""
    while True:
        if dataset_cfg.get('datasets'):
            dataset_cfg = dataset_cfg['datasets'][0]
        elif isinstance(dataset_cfg.get('dataset'), dict):
            dataset_cfg = dataset_cfg['dataset']
        else:
            return dataset_cfg


def _fit_canvas(image: np.ndarray, hw: Tuple[int, int], pad_value: np.ndarray) -> Tuple[np.ndarray, str]:
    """A (3, h, w) pipeline output on the export's (3, H, W) canvas, bottom/right padded with the mean colour
    (zero after normalisation, as ``OnnxDetector`` and ``DetDataPreprocessor`` pad); one larger than the
    canvas is first shrunk to fit, keeping its aspect ratio. Returns the canvas and what was done to the image
    (``''``, ``'padded'`` or ``'shrunk'``)."""
    h, w = image.shape[-2:]
    done = 'shrunk' if h > hw[0] or w > hw[1] else 'padded' if (h, w) != tuple(hw) else ''
    if done == 'shrunk':
        hwc = mmcv.imrescale(np.ascontiguousarray(image.transpose(1, 2, 0)), min(hw[0] / h, hw[1] / w))
        image = hwc.reshape(hwc.shape[0], hwc.shape[1], -1).transpose(2, 0, 1)
        h, w = image.shape[-2:]
    canvas = np.broadcast_to(pad_value.reshape(3, 1, 1), (3, *hw)).astype(np.float32)
    canvas[:, :min(h, hw[0]), :min(w, hw[1])] = image[:, :hw[0], :hw[1]]
    return canvas, done


def parity_images(cfg, meta: dict, count: int, seed: int = 0) -> Tuple[torch.Tensor, str]:
    """``count`` images for the parity check, float32 (count, 3, H, W) raw pixels at the export's size, and
    a description of where they come from. Real images, when the config's test (else val) dataset is on disk:
    the dataset is built by mmdet's registry and each image goes through the config's own test pipeline, then
    onto the export's canvas (:func:`_fit_canvas`); ``seed`` chooses which. Otherwise uniform random pixels
    (seeded), the description saying why no real ones were used."""
    h, w = meta['input_hw']
    images, source = None, None
    dataset_cfg, key = _dataset_cfg(cfg)
    if cfg is None:
        reason = 'no config given to load real ones from'
    elif dataset_cfg is None:
        reason = 'the config has no test_dataloader or val_dataloader dataset'
    else:
        leaf = dataset_leaf(dataset_cfg)
        data_root, ann_file = leaf.get('data_root'), leaf.get('ann_file')
        where = ' '.join(x for x in (f'ann_file {ann_file!r}' if ann_file else '',
                                     f'under data_root {data_root!r}' if data_root else '') if x)
        if data_root and not osp.isdir(data_root):
            reason = f'{key}.dataset data_root {data_root!r} not found' + \
                ('' if osp.isabs(data_root) else f' (relative to {os.getcwd()})')
        else:
            try:
                images, fitted, picked = load_real_images(dataset_cfg, meta, count, seed)
                fit = {'shrunk': f'shrunk to fit and padded to {h}x{w}', 'padded': f'padded to {h}x{w}',
                       '': f'{h}x{w}'}[fitted]
                source = (f'{count} real images from the {key} dataset ({where}; images '
                          f'{", ".join(map(str, picked[:8]))}{", ..." if len(picked) > 8 else ""} chosen by seed '
                          f'{seed}, through its test pipeline, {fit})')
            except Exception as e:  # noqa: BLE001  (whatever stops the data loading: said in the report)
                reason = f'loading the {key} dataset ({where}) failed: {type(e).__name__}: {e}'
    if images is None:
        images = torch.randint(0, 256, (count, 3, h, w), generator=torch.Generator().manual_seed(seed),
                               dtype=torch.uint8).float()
        source = f'{count} random images (seed {seed}; {reason})'
    return images, source


def load_real_images(dataset_cfg, meta: dict, count: int, seed: int):
    """``count`` images of a dataset config chosen by ``seed``, through its pipeline and placed on the export's
    canvas (the parity check's real images, the INT8 calibration set); returns (images, what was done to them
    (shrunk, padded or nothing), the picked indices)."""
    register_all_modules()
    dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    if len(dataset) == 0:
        raise ValueError('the dataset is empty')
    picked = np.random.default_rng(seed).choice(len(dataset), size=count, replace=count > len(dataset)).tolist()
    mean = np.asarray(meta['mean'], dtype=np.float32)
    pad_value = mean[::-1] if meta['bgr_to_rgb'] else mean  # in the raw (as loaded) channel order
    canvases, done = [], set()
    for i in picked:
        image = dataset[i]['inputs']
        image = (image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)).astype(np.float32)
        canvas, fitted = _fit_canvas(image, tuple(meta['input_hw']), pad_value)
        canvases.append(canvas)
        done.add(fitted)
    fitted = 'shrunk' if 'shrunk' in done else 'padded' if 'padded' in done else ''
    return torch.from_numpy(np.stack(canvases)), fitted, picked


def check_parity(model, onnx_file: str, batch: int = 2, seed: int = 0, threads: Optional[int] = None,
                 tolerance: Tolerance = TOLERANCE, cfg=None) -> ParityReport:
    """Judge ``onnx_file`` against ``model`` (PyTorch, mmdet's own ``predict``) on ``batch`` images of the
    exported size: real ones from ``cfg``'s test (else val) dataset through its test pipeline where that data
    is on disk, else random uint8 pixels (:func:`parity_images`; ``seed`` chooses). First the pre-NMS tensors
    element by element, then the kept detections robustly to ties (``parity``); the report's ``failures``
    name what differs, by how much, against which tolerance, ``images`` where the images came from and
    ``verdict()`` whether NMS was exercised at all."""
    meta = read_metadata(onnx_file)
    h, w = meta['input_hw']
    side = max(h, w)
    images, source = parity_images(cfg, meta, batch, seed)
    ort = _run_onnx(onnx_file, images.numpy(), threads)
    report = ParityReport(side=side, tolerance=tolerance, images=source)
    ref_pre = pytorch_pre_nms(model, _preprocessed(model, images)['inputs'], (h, w))
    report.pre_nms, report.failures = compare_pre_nms(ref_pre, ort['pre_nms'], side, tolerance)
    post = meta['postprocess']
    cuts, candidates = _selection_context(ref_pre, post, batch)
    kept_failures = []
    for i, ref in enumerate(pytorch_predictions(model, images)):
        keep = ort['labels'][i] >= 0
        got = Detections.of(ort['dets'][i][keep, :4], ort['dets'][i][keep, 4], ort['labels'][i][keep])
        r = judge_kept(Detections.of(ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy()), got, post, side,
                       tolerance, cuts[i], candidates and (candidates[0][i], candidates[1][i]), image=i)
        report.detections += len(ref.scores)
        report.matched += r['matched']
        report.tie_explained += r['tie_explained']
        report.box_rel, report.score = max(report.box_rel, r['box_rel']), max(report.score, r['score'])
        kept_failures += r['failures']
    if report.failures and kept_failures:  # the network differs: the kept sets cannot agree either
        kept_failures = [f'kept detections: {len(kept_failures)} differences, following from the pre-NMS ones '
                         f'above; the first: {kept_failures[0]}']
    report.failures += kept_failures
    return report
