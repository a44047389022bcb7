"""Export a config + checkpoint (dense or pruned) to ONNX and check it against PyTorch: what the tools call."""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample

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


def check_parity(model, onnx_file: str, batch: int = 2, seed: int = 0, threads: Optional[int] = None,
                 tolerance: Tolerance = TOLERANCE) -> ParityReport:
    """Judge ``onnx_file`` against ``model`` (PyTorch, mmdet's own ``predict``) on ``batch`` random uint8 images
    of the exported size: the pre-NMS tensors element by element, then the kept detections robustly to ties
    (``parity``); the report's ``failures`` name what differs, by how much, against which tolerance."""
    meta = read_metadata(onnx_file)
    h, w = meta['input_hw']
    side = max(h, w)
    images = torch.randint(0, 256, (batch, 3, h, w), generator=torch.Generator().manual_seed(seed),
                           dtype=torch.uint8)
    ort = _run_onnx(onnx_file, images.float().numpy(), threads)
    report = ParityReport(side=side, tolerance=tolerance)
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
