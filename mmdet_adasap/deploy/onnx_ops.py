"""The static-shape pieces every exported detector graph is built from: NMS as the ONNX op, class-aware NMS
with a fixed number of outputs, top-k selection, row gathers, the ``min_bbox_size`` filter and the data
preprocessor as graph ops."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import nms as torchvision_nms  # imported here: importing it while tracing fails


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


def top_pairs(scores: torch.Tensor, k: int, score_thr: float):
    """Top ``k`` (prior, class) pairs of ``scores`` (B, A, C) above ``score_thr`` (mmdet's
    ``filter_scores_and_topk``: a TopK with the invalid ones pushed below every valid one picks the same set):
    (scores (0 = invalid), prior index, class), each (B, k)."""
    b, a, c = scores.shape
    flat = scores.reshape(b, a * c)
    valid = flat > score_thr
    top, index = torch.where(valid, flat, torch.full_like(flat, -1.0)).topk(min(k, a * c), dim=1)
    return top.clamp(min=0), torch.div(index, c, rounding_mode='floor'), index % c


def gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t`` (B, A, D) rows ``index`` (B, k) -> (B, k, D)."""
    return t.gather(1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def drop_small(boxes: torch.Tensor, scores: torch.Tensor, min_size) -> torch.Tensor:
    """``scores`` with boxes not wider and taller than ``min_size`` set to 0 (``_bbox_post_process``)."""
    if min_size is None or min_size < 0:
        return scores
    wh = boxes[..., 2:] - boxes[..., :2]
    return scores * ((wh[..., 0] > min_size) & (wh[..., 1] > min_size)).to(scores.dtype)


def clip_boxes(boxes: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(..., 4) x1, y1, x2, y2 clipped to an ``hw`` image (static bounds: the input size is fixed)."""
    h, w = hw
    bound = boxes.new_tensor([w, h, w, h])
    return torch.min(boxes.clamp(min=0), bound)


class Preprocess(nn.Module):
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
