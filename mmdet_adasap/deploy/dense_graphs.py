"""Export graphs for single-stage heads that use mmdet's ``BaseDenseHead`` test path: SSD (anchor deltas,
softmax classes with background last) and RTMDet (distances from points, sigmoid classes).

mmdet's ``_predict_by_feat_single`` + ``_bbox_post_process`` re-expressed with static shapes:

- every prior's box decoded and every (prior, class) score computed first: the *pre-NMS outputs*
  (``boxes`` (B, N, 4), ``scores`` (B, N, C)), which the parity check compares with PyTorch's before any
  selection, so that near-tied scores cannot decide its verdict;
- per level, the top ``nms_pre`` (prior, class) pairs above ``score_thr`` (``filter_scores_and_topk``);
- boxes not wider/taller than ``min_bbox_size`` dropped;
- class-aware NMS as the ONNX ``NonMaxSuppression`` op, then the ``max_per_img`` best by score.

Decoding every prior and then gathering the selected rows gives the same numbers as mmdet's gather-then-decode
(the decoders are elementwise per prior).
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox
from mmdet.structures.bbox import distance2bbox

from .onnx_ops import Preprocess, clip_boxes, drop_small, gather_rows, nms_topk, top_pairs


def decode_deltas(coder, priors: torch.Tensor, deltas: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """mmdet's ``delta2bbox`` on ``deltas`` (B, N, 4) from ``priors`` (N, 4) or (B, N, 4) (its coder's
    ``decode`` switches to a broken ONNX path in 3.3.0: ``onnx_delta2bbox`` imports the removed ``mmdet.core``)."""
    b, n = deltas.shape[:2]
    boxes = delta2bbox(priors.expand_as(deltas).reshape(-1, 4), deltas.reshape(-1, 4), coder.means, coder.stds,
                       hw if coder.clip_border else None, 16 / 1000, coder.clip_border, coder.add_ctr_clamp,
                       coder.ctr_clamp)
    return boxes.reshape(b, n, 4)


def level_candidates(boxes: torch.Tensor, scores: torch.Tensor, level_sizes: List[int], nms_pre: int,
                     score_thr: float):
    """Per level the top ``nms_pre`` (prior, class) pairs of ``scores`` (B, N, C) above ``score_thr`` (all
    pairs if ``nms_pre`` <= 0), concatenated: candidate boxes (B, M, 4), scores (B, M) (0 = dropped), classes
    (B, M) and levels (B, M)."""
    out_boxes, out_scores, out_labels, out_levels = [], [], [], []
    start = 0
    for i, size in enumerate(level_sizes):
        level = scores[:, start:start + size]
        k = nms_pre if nms_pre > 0 else level.shape[1] * level.shape[2]
        top, prior, label = top_pairs(level, k, score_thr)
        out_boxes.append(gather_rows(boxes[:, start:start + size], prior))
        out_scores.append(top)
        out_labels.append(label)
        out_levels.append(torch.full_like(prior, i))
        start += size
    return tuple(torch.cat(t, 1) for t in (out_boxes, out_scores, out_labels, out_levels))


def flatten_levels(maps, channels: int) -> torch.Tensor:
    """Per-level (B, A * channels, H, W) maps -> (B, N, channels), levels concatenated (mmdet's prior order)."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, channels) for m in maps], 1)


class DenseHeadGraph(nn.Module):
    """A single-stage detector whose head follows ``BaseDenseHead``'s test path, for a fixed input size;
    ``forward`` returns ``dets``, ``labels`` and the pre-NMS outputs named in ``PRE_NMS``."""

    PRE_NMS = ('boxes', 'scores')

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]):
        super().__init__()
        self.detector, self.head, self.hw = detector, detector.bbox_head, tuple(hw)
        self.preprocess = Preprocess(detector.data_preprocessor)
        cfg = self.head.test_cfg
        self.nms_pre, self.score_thr = cfg.get('nms_pre', -1), cfg.get('score_thr', 0.0)
        self.iou, self.max_per_img = cfg.nms.iou_threshold, cfg.max_per_img
        self.min_bbox_size = cfg.get('min_bbox_size', -1)
        with torch.no_grad():
            cls_scores = self.head(detector.extract_feat(torch.zeros(1, 3, *self.hw)))[0]
        priors = self.head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], device='cpu')
        self.level_sizes = [len(p) for p in priors]
        self.register_buffer('priors', torch.cat(priors).float(), persistent=False)

    def scores(self, cls_scores) -> torch.Tensor:
        logits = flatten_levels(cls_scores, self.head.cls_out_channels)
        return logits.sigmoid() if self.head.use_sigmoid_cls else logits.softmax(-1)[..., :-1]

    def decode(self, bbox_preds) -> torch.Tensor:
        raise NotImplementedError

    def postprocess(self) -> dict:
        """What the kept-set comparison needs to know about the selection (stored in the metadata)."""
        return dict(iou_threshold=self.iou, score_thr=self.score_thr, max_per_img=self.max_per_img,
                    nms_pre=self.nms_pre, level_sizes=self.level_sizes)

    def forward(self, x):
        cls_scores, bbox_preds = self.head(self.detector.extract_feat(self.preprocess(x)))[:2]
        boxes, scores = self.decode(bbox_preds), self.scores(cls_scores)
        cand_boxes, cand_scores, labels, _ = level_candidates(boxes, scores, self.level_sizes, self.nms_pre,
                                                              self.score_thr)
        cand_scores = drop_small(cand_boxes, cand_scores, self.min_bbox_size)
        dets, labels = nms_topk(cand_boxes, cand_scores, labels, self.head.num_classes, self.iou, self.max_per_img)
        return dets, labels, boxes, scores


class SSDGraph(DenseHeadGraph):
    """``SSDHead`` (SSD300/512, SSDLite, the demo SSD): anchor deltas, softmax classes with background last."""

    def decode(self, bbox_preds) -> torch.Tensor:
        return decode_deltas(self.head.bbox_coder, self.priors, flatten_levels(bbox_preds, 4), self.hw)


class RTMDetGraph(DenseHeadGraph):
    """``RTMDetHead`` / ``RTMDetSepBNHead``: sigmoid classes (objectness, where configured, is already folded
    into them by the head), distances (left, top, right, bottom, in pixels) from the level's points."""

    def decode(self, bbox_preds) -> torch.Tensor:
        # mmdet's distance2bbox without max_shape: its ONNX clipping path imports the removed mmdet.core
        boxes = distance2bbox(self.priors, flatten_levels(bbox_preds, 4))
        return clip_boxes(boxes, self.hw) if self.head.bbox_coder.clip_border else boxes
