"""Export graph for Faster R-CNN (``RPNHead`` + ``StandardRoIHead`` with a box head).

RPN proposals per image (every anchor decoded first: the pre-NMS outputs ``rpn_boxes`` (B, N, 4) and
``rpn_scores`` (B, N, 1) the parity check compares; then per level the top ``nms_pre``, NMS, padded to
``max_per_img`` with score 0, whose detections are then dropped), RoI features level by level (every level's
RoIAlign on all proposals, masked: the static-shape form of ``SingleRoIExtractor``), class-specific box
decoding and class-aware NMS.
"""
from typing import Tuple

import torch
import torch.nn as nn
from torchvision.ops import roi_align as torchvision_roi_align  # imported here: importing it while tracing fails

from .dense_graphs import decode_deltas, flatten_levels, level_candidates
from .onnx_ops import Preprocess, drop_small, nms_topk


class TwoStageGraph(nn.Module):
    """Faster R-CNN with its test-time post-processing, for a fixed input size."""

    PRE_NMS = ('rpn_boxes', 'rpn_scores')

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]):
        super().__init__()
        self.detector, self.hw = detector, tuple(hw)
        self.rpn, self.roi = detector.rpn_head, detector.roi_head
        self.preprocess = Preprocess(detector.data_preprocessor)
        self.rpn_cfg, self.rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        self.max_per_img = self.rcnn_cfg.max_per_img
        with torch.no_grad():
            cls_scores, _ = self.rpn(detector.extract_feat(torch.zeros(1, 3, *self.hw)))
        priors = self.rpn.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], device='cpu')
        self.level_sizes = [len(p) for p in priors]
        self.register_buffer('priors', torch.cat(priors).float(), persistent=False)

    def postprocess(self) -> dict:
        """The second stage's selection (the kept detections come from it)."""
        return dict(iou_threshold=self.rcnn_cfg.nms.iou_threshold, score_thr=self.rcnn_cfg.score_thr,
                    max_per_img=self.max_per_img, nms_pre=-1, level_sizes=[])

    def _proposals(self, feats):
        cls_scores, bbox_preds = self.rpn(feats)
        scores = flatten_levels(cls_scores, 1).sigmoid()  # RPN: one sigmoid class
        boxes = decode_deltas(self.rpn.bbox_coder, self.priors, flatten_levels(bbox_preds, 4), self.hw)
        cand_boxes, cand_scores, _, levels = level_candidates(boxes, scores, self.level_sizes,
                                                              self.rpn_cfg.nms_pre, -1.0)
        cand_scores = drop_small(cand_boxes, cand_scores, self.rpn_cfg.get('min_bbox_size', -1))
        dets, _ = nms_topk(cand_boxes, cand_scores, levels, len(self.level_sizes), self.rpn_cfg.nms.iou_threshold,
                           self.rpn_cfg.max_per_img)
        return dets, boxes, scores  # dets (B, R, 5); padding rows are all zero

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
        proposals, rpn_boxes, rpn_scores = self._proposals(feats)
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
        boxes = decode_deltas(head.bbox_coder, priors, deltas.reshape(b, r * c, 4), self.hw)
        flat = scores.reshape(b, r * c)
        flat = torch.where(flat > self.rcnn_cfg.score_thr, flat, torch.zeros_like(flat))
        labels = torch.arange(c).repeat(r).reshape(1, r * c).expand(b, -1)
        dets, labels = nms_topk(boxes, flat, labels, c, self.rcnn_cfg.nms.iou_threshold, self.max_per_img)
        return dets, labels, rpn_boxes, rpn_scores
