"""ONNX export of mmdet detectors (dense or pruned) with preprocessing, box decoding and NMS inside the graph.

Why our own thin wrapper and not mmdeploy: mmdeploy 1.3.1 (its last release) installs here only by downgrading
``onnx`` to 1.17 and ``protobuf`` to 3.20.2 (below what onnxruntime 1.32 requires), and its ``torch2onnx``
calls ``torch.onnx.export`` without ``dynamo=False``, which torch >= 2.9 routes to the dynamo exporter (needs
``onnxscript``; mmdeploy's rewriters are TorchScript-exporter symbolics). With that forced off it does export
the demo SSD, but only through a monkeypatch of torch inside a pinned-down stack. The wrapper here is small:
the network is mmdet's own modules, traced by the TorchScript exporter (``dynamo=False``: it takes
``autograd.Function.symbolic`` for the NMS op and mmcv's ``RoIAlign`` symbolic, and traces mmdet heads without
graph breaks); only the test-time post-processing is re-expressed with static shapes:

- per level, the top ``nms_pre`` (anchor, class) pairs above ``score_thr`` (mmdet's ``filter_scores_and_topk``:
  a TopK over scores with the invalid ones pushed below every valid one picks the same set);
- mmdet's ``delta2bbox`` on the selected anchors, clipped to the input;
- boxes not wider/taller than ``min_bbox_size`` dropped (``_bbox_post_process``);
- class-aware NMS as the ONNX ``NonMaxSuppression`` op (per class natively, instead of mmcv's coordinate
  offset trick), then the ``max_per_img`` best by score.

Graph contract (stored in the model's ``metadata_props`` under ``mmdet_adasap``, read by ``OnnxDetector``):
input ``input`` float32 (B, 3, H, W) **raw pixels 0-255 in the channel order mmdet's pipeline loads (BGR)**;
the data preprocessor's ``bgr_to_rgb`` and mean/std are applied inside. Outputs ``dets`` (B, K, 5) x1, y1,
x2, y2, score in input pixels, sorted by score, and ``labels`` (B, K) int64; K = ``max_per_img`` (fewer
detections are padded with score 0 and label -1, so batches have one shape). H, W are fixed at export
(anchors are constants); the batch is fixed or dynamic (``batch='dynamic'``).
"""
import json
import os
import warnings
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads import RPNHead, SSDHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox
from torchvision.ops import nms as torchvision_nms  # imported here: importing it while tracing fails
from torchvision.ops import roi_align as torchvision_roi_align

MIN_OPSET = 11  # NonMaxSuppression is opset 10; TopK with a k input and ScatterND need 11
MIN_OPSET_TWO_STAGE = 16  # RoiAlign's half_pixel mode (mmcv's aligned=True) is opset 16
DEFAULT_OPSET = 17
METADATA_KEY = 'mmdet_adasap'
INPUT_DESCRIPTION = 'raw pixels 0-255, float32, (B, 3, H, W), channel order as loaded by mmcv (BGR)'


class ExportError(ValueError):
    """A model, option or path the exporter cannot handle (the message names it and the fix)."""


# ----------------------------------------------------------------------------------------------- NMS op
class _NonMaxSuppression(torch.autograd.Function):
    """``selected = (M, 3)`` int64 rows ``(batch, class, box)`` as ONNX ``NonMaxSuppression`` returns them.

    The eager forward (run while tracing) is torchvision's NMS per (image, class) over boxes scoring above
    ``score_threshold``; the exported graph holds the ONNX op itself.
    """

    @staticmethod
    def forward(ctx, boxes, scores, iou_threshold: float, score_threshold: float):
        rows = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                idx = (scores[b, c] > score_threshold).nonzero().squeeze(1)
                keep = idx[torchvision_nms(boxes[b, idx], scores[b, c, idx], iou_threshold)]
                rows.append(torch.stack([torch.full_like(keep, b), torch.full_like(keep, c), keep], 1))
        return torch.cat(rows).long() if rows else boxes.new_zeros((0, 3), dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold: float, score_threshold: float):
        max_boxes = g.op('Constant', value_t=torch.tensor([2 ** 31 - 1], dtype=torch.long))
        iou = g.op('Constant', value_t=torch.tensor([iou_threshold], dtype=torch.float))
        thr = g.op('Constant', value_t=torch.tensor([score_threshold], dtype=torch.float))
        return g.op('NonMaxSuppression', boxes, scores, max_boxes, iou, thr)


def nms_topk(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, num_classes: int,
             iou_threshold: float, keep: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class-aware NMS of candidates ``boxes`` (B, N, 4), ``scores`` (B, N) (0 = dropped), ``classes`` (B, N),
    then the ``keep`` best: ``dets`` (B, keep, 5) and ``labels`` (B, keep), padding rows score 0, label -1."""
    b, n = scores.shape
    one_hot = F.one_hot(classes, num_classes).to(scores.dtype)  # (B, N, C): NMS per class on unshifted boxes
    per_class = (one_hot * scores.unsqueeze(-1)).transpose(1, 2).contiguous()
    selected = _NonMaxSuppression.apply(boxes, per_class, float(iou_threshold), 0.0)
    kept = torch.zeros_like(scores)
    kept[selected[:, 0], selected[:, 2]] = 1.0
    ranked = scores * kept + (kept - 1.0)  # kept: its score (> 0); others: -1
    top, index = ranked.topk(min(keep, n), dim=1)
    valid = top > 0
    gathered = boxes.gather(1, index.unsqueeze(-1).expand(-1, -1, 4))
    dets = torch.cat([gathered, top.unsqueeze(-1)], -1) * valid.unsqueeze(-1).to(boxes.dtype)
    labels = torch.where(valid, classes.gather(1, index), torch.full_like(index, -1))
    return dets, labels


# ----------------------------------------------------------------------------------------------- pieces
def _decode(coder, priors: torch.Tensor, deltas: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """mmdet's ``delta2bbox`` on (B, N, 4) (its coder's ``decode`` switches to a broken ONNX path in 3.3.0:
    ``onnx_delta2bbox`` imports the removed ``mmdet.core``)."""
    b, n = deltas.shape[:2]
    boxes = delta2bbox(priors.reshape(-1, 4), deltas.reshape(-1, 4), coder.means, coder.stds,
                       hw if coder.clip_border else None, 16 / 1000, coder.clip_border, coder.add_ctr_clamp,
                       coder.ctr_clamp)
    return boxes.reshape(b, n, 4)


def _drop_small(boxes: torch.Tensor, scores: torch.Tensor, min_size) -> torch.Tensor:
    if min_size is None or min_size < 0:
        return scores
    wh = boxes[..., 2:] - boxes[..., :2]
    return scores * ((wh[..., 0] > min_size) & (wh[..., 1] > min_size)).to(scores.dtype)


def _top_pairs(scores: torch.Tensor, k: int, score_thr: float):
    """Top ``k`` (anchor, class) pairs of ``scores`` (B, A, C) above ``score_thr``: (scores (0 = invalid),
    anchor index, class), each (B, k)."""
    b, a, c = scores.shape
    flat = scores.reshape(b, a * c)
    valid = flat > score_thr
    top, index = torch.where(valid, flat, torch.full_like(flat, -1.0)).topk(min(k, a * c), dim=1)
    return top.clamp(min=0), torch.div(index, c, rounding_mode='floor'), index % c


def _gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t`` (B, A, D) rows ``index`` (B, k) -> (B, k, D)."""
    return t.gather(1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


class _Preprocess(nn.Module):
    """DetDataPreprocessor's colour conversion and normalisation, as graph ops."""

    def __init__(self, data_preprocessor):
        super().__init__()
        self.bgr_to_rgb = bool(getattr(data_preprocessor, '_channel_conversion', False))
        mean = getattr(data_preprocessor, 'mean', None)
        std = getattr(data_preprocessor, 'std', None)
        self.register_buffer('mean', (mean if mean is not None else torch.zeros(3)).reshape(1, 3, 1, 1).float())
        self.register_buffer('std', (std if std is not None else torch.ones(3)).reshape(1, 3, 1, 1).float())

    def forward(self, x):
        if self.bgr_to_rgb:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def describe(self) -> dict:
        return dict(mean=self.mean.flatten().tolist(), std=self.std.flatten().tolist(), bgr_to_rgb=self.bgr_to_rgb)


# ----------------------------------------------------------------------------------------------- graphs
class SingleStageGraph(nn.Module):
    """An SSD-family detector (``SSDHead``: softmax classes with background last) with its test-time
    post-processing, for a fixed input size."""

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]):
        super().__init__()
        self.detector, self.head, self.hw = detector, detector.bbox_head, tuple(hw)
        self.preprocess = _Preprocess(detector.data_preprocessor)
        cfg = self.head.test_cfg
        self.nms_pre, self.score_thr = cfg.get('nms_pre', -1), cfg.get('score_thr', 0.0)
        self.iou, self.max_per_img = cfg.nms.iou_threshold, cfg.max_per_img
        self.min_bbox_size = cfg.get('min_bbox_size', -1)
        with torch.no_grad():
            cls_scores, _ = self.head(detector.extract_feat(torch.zeros(1, 3, *self.hw)))
        priors = self.head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], device='cpu')
        self.num_levels = len(priors)
        for i, p in enumerate(priors):
            self.register_buffer(f'priors_{i}', p.float(), persistent=False)

    def _level_scores(self, cls_score: torch.Tensor) -> torch.Tensor:
        b = cls_score.shape[0]
        logits = cls_score.permute(0, 2, 3, 1).reshape(b, -1, self.head.cls_out_channels)
        if self.head.use_sigmoid_cls:
            return logits.sigmoid()
        return logits.softmax(-1)[..., :-1]

    def forward(self, x):
        cls_scores, bbox_preds = self.head(self.detector.extract_feat(self.preprocess(x)))
        b = x.shape[0]
        all_boxes, all_scores, all_labels = [], [], []
        for i in range(self.num_levels):
            scores = self._level_scores(cls_scores[i])
            deltas = bbox_preds[i].permute(0, 2, 3, 1).reshape(b, -1, 4)
            k = self.nms_pre if self.nms_pre > 0 else scores.shape[1] * scores.shape[2]
            top, anchor, label = _top_pairs(scores, k, self.score_thr)
            priors = getattr(self, f'priors_{i}')[anchor]  # (B, k, 4)
            all_boxes.append(_decode(self.head.bbox_coder, priors, _gather_rows(deltas, anchor), self.hw))
            all_scores.append(top)
            all_labels.append(label)
        boxes, scores, labels = torch.cat(all_boxes, 1), torch.cat(all_scores, 1), torch.cat(all_labels, 1)
        scores = _drop_small(boxes, scores, self.min_bbox_size)
        return nms_topk(boxes, scores, labels, self.head.num_classes, self.iou, self.max_per_img)


class TwoStageGraph(nn.Module):
    """Faster R-CNN (``RPNHead`` + ``StandardRoIHead`` with a box head): RPN proposals per image (padded to
    ``max_per_img`` with score 0, whose detections are then dropped), RoI features level by level (every
    level's RoIAlign on all proposals, masked: the static-shape form of ``SingleRoIExtractor``), class-specific
    box decoding and class-aware NMS."""

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]):
        super().__init__()
        self.detector, self.hw = detector, tuple(hw)
        self.rpn, self.roi = detector.rpn_head, detector.roi_head
        self.preprocess = _Preprocess(detector.data_preprocessor)
        self.rpn_cfg, self.rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        with torch.no_grad():
            cls_scores, _ = self.rpn(detector.extract_feat(torch.zeros(1, 3, *self.hw)))
        priors = self.rpn.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], device='cpu')
        self.num_levels = len(priors)
        for i, p in enumerate(priors):
            self.register_buffer(f'priors_{i}', p.float(), persistent=False)

    def _proposals(self, feats, b):
        cls_scores, bbox_preds = self.rpn(feats)
        boxes, scores, levels = [], [], []
        for i in range(self.num_levels):
            s = cls_scores[i].permute(0, 2, 3, 1).reshape(b, -1, 1).sigmoid()  # RPN: one sigmoid class
            deltas = bbox_preds[i].permute(0, 2, 3, 1).reshape(b, -1, 4)
            top, anchor, _ = _top_pairs(s, self.rpn_cfg.nms_pre, -1.0)
            priors = getattr(self, f'priors_{i}')[anchor]
            boxes.append(_decode(self.rpn.bbox_coder, priors, _gather_rows(deltas, anchor), self.hw))
            scores.append(top)
            levels.append(torch.full_like(anchor, i))
        boxes, scores, levels = torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(levels, 1)
        scores = _drop_small(boxes, scores, self.rpn_cfg.get('min_bbox_size', -1))
        dets, _ = nms_topk(boxes, scores, levels, self.num_levels, self.rpn_cfg.nms.iou_threshold,
                           self.rpn_cfg.max_per_img)
        return dets  # (B, R, 5); padding rows are all zero

    def _roi_features(self, feats, rois):
        """mmcv's ``RoIAlign`` as torchvision's (the same detectron2 kernel; mmcv 2.1.0's ONNX symbolic emits
        ``Squeeze`` with an ``axes`` attribute, invalid from opset 13, and torchvision's maps ``aligned`` to
        RoiAlign-16's ``half_pixel`` mode)."""
        extractor = self.roi.bbox_roi_extractor
        feats = feats[:extractor.num_inputs]
        target = extractor.map_roi_levels(rois, len(feats))
        out = 0
        for i, layer in enumerate(extractor.roi_layers):
            mask = (target == i).to(rois.dtype).reshape(-1, 1, 1, 1)
            pooled = torchvision_roi_align(feats[i], rois, layer.output_size, layer.spatial_scale,
                                           layer.sampling_ratio, layer.aligned)
            out = out + pooled * mask
        return out

    def forward(self, x):
        b = x.shape[0]
        feats = self.detector.extract_feat(self.preprocess(x))
        proposals = self._proposals(feats, b)
        r = proposals.shape[1]
        batch_index = torch.arange(b, dtype=x.dtype).reshape(b, 1, 1).expand(-1, r, 1)
        rois = torch.cat([batch_index, proposals[..., :4]], -1).reshape(-1, 5)
        cls_score, bbox_pred = self.roi.bbox_head(self._roi_features(feats, rois))
        head = self.roi.bbox_head
        c = head.num_classes
        scores = cls_score.softmax(-1)[:, :c].reshape(b, r, c)
        scores = scores * (proposals[..., 4:] > 0).to(scores.dtype)  # padding proposals detect nothing
        deltas = bbox_pred.reshape(b, r, -1, 4)
        if deltas.shape[2] == 1:
            deltas = deltas.expand(-1, -1, c, -1)
        priors = proposals[..., :4].unsqueeze(2).expand(-1, -1, c, -1).reshape(b, r * c, 4)
        boxes = _decode(head.bbox_coder, priors, deltas.reshape(b, r * c, 4), self.hw)
        flat = scores.reshape(b, r * c)
        flat = torch.where(flat > self.rcnn_cfg.score_thr, flat, torch.zeros_like(flat))
        labels = torch.arange(c).repeat(r).reshape(1, r * c).expand(b, -1)
        return nms_topk(boxes, flat, labels, c, self.rcnn_cfg.nms.iou_threshold, self.rcnn_cfg.max_per_img)


SUPPORTED = {
    'SingleStageDetector': 'SSDHead (SSD300/512, SSDLite, the demo SSD)',
    'TwoStageDetector': 'RPNHead + StandardRoIHead (Faster R-CNN)',
}


def build_graph(detector: nn.Module, hw: Tuple[int, int]) -> nn.Module:
    """The export module for ``detector``, or ``ExportError`` naming the unsupported part."""
    supported = '; '.join(f'{k} with {v}' for k, v in SUPPORTED.items())
    if isinstance(detector, SingleStageDetector):
        head = detector.bbox_head
        if type(head) is not SSDHead:
            raise ExportError(f'the ONNX exporter does not support head {type(head).__name__!r} '
                              f'(bbox_head.type); supported: {supported}')
        graph = SingleStageGraph(detector, hw)
    elif isinstance(detector, TwoStageDetector):
        rpn, roi = getattr(detector, 'rpn_head', None), getattr(detector, 'roi_head', None)
        if type(rpn) is not RPNHead or type(roi) is not StandardRoIHead or getattr(roi, 'with_mask', False):
            raise ExportError(f'the ONNX exporter does not support rpn_head {type(rpn).__name__!r} / roi_head '
                              f'{type(roi).__name__!r}{" with a mask head" if getattr(roi, "with_mask", 0) else ""}'
                              f'; supported: {supported}')
        layers = roi.bbox_roi_extractor.roi_layers
        if any(getattr(layer, 'pool_mode', 'avg') != 'avg' or type(layer).__name__ != 'RoIAlign' for layer in layers):
            raise ExportError('the ONNX exporter supports RoIAlign with pool_mode="avg" in the RoI extractor only; '
                              f'got {[type(layer).__name__ for layer in layers]}')
        graph = TwoStageGraph(detector, hw)
    else:
        raise ExportError(f'the ONNX exporter does not support detector {type(detector).__name__!r}; '
                          f'supported: {supported}')
    return graph.eval()


# ----------------------------------------------------------------------------------------------- export
def check_export_args(out_file: str, batch: Union[int, str], opset: int) -> None:
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f'opset {opset} is too old: NMS inside the graph (NonMaxSuppression, TopK with a '
                          f'dynamic k, ScatterND, RoiAlign) needs opset >= {MIN_OPSET}; use --opset '
                          f'{DEFAULT_OPSET} (the default)')
    if batch != 'dynamic' and not (isinstance(batch, int) and batch >= 1):
        raise ExportError(f"batch must be a positive integer or 'dynamic', got {batch!r}")
    folder = osp.dirname(osp.abspath(out_file))
    if not osp.isdir(folder):
        raise ExportError(f'output folder {folder!r} does not exist: create it first (nothing was written)')
    if not out_file.endswith('.onnx'):
        raise ExportError(f'output file {out_file!r} should end with .onnx')


def export_onnx(detector: nn.Module, out_file: str, input_hw: Sequence[int], batch: Union[int, str] = 1,
                opset: int = DEFAULT_OPSET, metadata: Optional[dict] = None) -> dict:
    """Export ``detector`` (eval mode, CPU) with post-processing to ``out_file``; returns the metadata written
    into the model (input contract, preprocessing, sizes). Written to a temporary file, then moved."""
    import onnx  # optional: only writing / reading ONNX metadata needs it
    check_export_args(out_file, batch, opset)
    hw = (int(input_hw[0]), int(input_hw[1]))
    divisor = getattr(detector.data_preprocessor, 'pad_size_divisor', 1) or 1
    if hw[0] % divisor or hw[1] % divisor:
        raise ExportError(f'input size {hw} is not a multiple of the data preprocessor\'s pad_size_divisor '
                          f'({divisor}): export at a multiple of it')
    graph = build_graph(detector.cpu().eval(), hw)
    if isinstance(graph, TwoStageGraph) and opset < MIN_OPSET_TWO_STAGE:
        raise ExportError(f'opset {opset} is too old for {type(detector).__name__}: RoIAlign with aligned=True '
                          f'needs opset >= {MIN_OPSET_TWO_STAGE} (RoiAlign half_pixel); use --opset {DEFAULT_OPSET}')
    example = torch.rand(1 if batch == 'dynamic' else batch, 3, *hw) * 255
    dynamic_axes = {'input': {0: 'batch'}, 'dets': {0: 'batch'}, 'labels': {0: 'batch'}} \
        if batch == 'dynamic' else None
    tmp = out_file + '.tmp'
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)  # static sizes are the contract (H, W fixed)
            warnings.filterwarnings('ignore', message='Constant folding - Only steps=1')  # strided box slices
            torch.onnx.export(graph, (example, ), tmp, dynamo=False, opset_version=opset, input_names=['input'],
                              output_names=['dets', 'labels'], dynamic_axes=dynamic_axes, do_constant_folding=True)
        model = onnx.load(tmp)
        meta = dict(input=INPUT_DESCRIPTION, input_hw=list(hw), batch=batch, opset=opset,
                    num_classes=_num_classes(detector), max_per_img=graph_max_per_img(graph),
                    **graph.preprocess.describe(), **(metadata or {}))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return meta


def graph_max_per_img(graph: nn.Module) -> int:
    return graph.max_per_img if isinstance(graph, SingleStageGraph) else graph.rcnn_cfg.max_per_img


def _num_classes(detector) -> int:
    head = getattr(detector, 'bbox_head', None) or detector.roi_head.bbox_head
    return int(head.num_classes)


def read_metadata(onnx_file: str) -> dict:
    """The ``mmdet_adasap`` metadata of an exported model (``ExportError`` if it was not exported here)."""
    import onnx  # optional: only writing / reading ONNX metadata needs it
    model = onnx.load(onnx_file, load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f'{onnx_file!r} has no {METADATA_KEY!r} metadata: export it with tools/export_onnx.py')
