"""Export graph for YOLOX (``YOLOXHead``): mmdet's ``YOLOXHead.predict_by_feat`` with static shapes.

Unlike ``BaseDenseHead``: one detection per prior, its class the best class, its score that class's sigmoid
times the sigmoid objectness, kept when >= ``score_thr``; boxes decoded from (dx, dy, log w, log h) in strides
around each point (``_bbox_decode``) and not clipped; no ``nms_pre`` and no ``max_per_img`` (YOLOX's
``_bbox_post_process`` returns every NMS survivor), so ``dets`` has one row per prior. The pre-NMS outputs
are ``boxes`` (B, N, 4), class ``scores`` (B, N, C) and ``objectness`` (B, N), each after its sigmoid.
"""
from typing import Tuple

import torch
import torch.nn as nn

from .dense_graphs import flatten_levels
from .onnx_ops import Preprocess, nms_topk


class YOLOXGraph(nn.Module):
    """A YOLOX detector with its test-time post-processing, for a fixed input size."""

    PRE_NMS = ('boxes', 'scores', 'objectness')

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]):
        super().__init__()
        self.detector, self.head, self.hw = detector, detector.bbox_head, tuple(hw)
        self.preprocess = Preprocess(detector.data_preprocessor)
        cfg = self.head.test_cfg
        self.score_thr, self.iou = cfg.get('score_thr', 0.0), cfg.nms.iou_threshold
        with torch.no_grad():
            cls_scores = self.head(detector.extract_feat(torch.zeros(1, 3, *self.hw)))[0]
        priors = self.head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], device='cpu',
                                                       with_stride=True)
        self.level_sizes = [len(p) for p in priors]
        self.register_buffer('priors', torch.cat(priors).float(), persistent=False)
        self.max_per_img = int(self.priors.shape[0])

    def postprocess(self) -> dict:
        return dict(iou_threshold=self.iou, score_thr=self.score_thr, max_per_img=self.max_per_img, nms_pre=-1,
                    level_sizes=self.level_sizes)

    def forward(self, x):
        cls_scores, bbox_preds, objectnesses = self.head(self.detector.extract_feat(self.preprocess(x)))
        scores = flatten_levels(cls_scores, self.head.cls_out_channels).sigmoid()
        objectness = flatten_levels(objectnesses, 1).squeeze(-1).sigmoid()
        boxes = self.head._bbox_decode(self.priors, flatten_levels(bbox_preds, 4))
        best, labels = scores.max(-1)
        score = best * objectness
        score = torch.where(score >= self.score_thr, score, torch.zeros_like(score))
        dets, labels = nms_topk(boxes, score, labels, self.head.num_classes, self.iou, self.max_per_img)
        return dets, labels, boxes, scores, objectness
