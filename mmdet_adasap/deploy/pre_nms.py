"""The pre-NMS tensors of a detector computed by mmdet's own PyTorch code (head ``forward``, prior generator,
box coder, score activation, as its ``predict_by_feat`` calls them), to compare with the exported graph's
tensors of the same names (``dense_graphs``, ``yolox_graph``, ``two_stage_graph``) before any selection.

Shapes (B images, N priors of all levels in mmdet's order, C classes): ``boxes`` (B, N, 4) in input pixels,
``scores`` (B, N, C); YOLOX adds ``objectness`` (B, N); Faster R-CNN gives its RPN's ``rpn_boxes`` and
``rpn_scores`` (B, N, 1).
"""
from typing import Dict, Tuple

import numpy as np
import torch
from mmdet.models.dense_heads import YOLOXHead
from mmdet.structures.bbox import get_box_tensor


def _dense_head(head, cls_scores, bbox_preds, hw: Tuple[int, int]):
    """``BaseDenseHead._predict_by_feat_single`` up to its selection, for every prior of every image."""
    priors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], dtype=cls_scores[0].dtype,
                                              device=cls_scores[0].device)
    boxes, scores = [], []
    for i in range(cls_scores[0].shape[0]):
        img_boxes, img_scores = [], []
        for cls_score, bbox_pred, level_priors in zip(cls_scores, bbox_preds, priors):
            pred = bbox_pred[i].permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size)
            logits = cls_score[i].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
            img_scores.append(logits.sigmoid() if head.use_sigmoid_cls else logits.softmax(-1)[:, :-1])
            img_boxes.append(get_box_tensor(head.bbox_coder.decode(level_priors, pred, max_shape=hw)))
        boxes.append(torch.cat(img_boxes))
        scores.append(torch.cat(img_scores))
    return torch.stack(boxes), torch.stack(scores)


def _yolox(head, cls_scores, bbox_preds, objectnesses):
    """``YOLOXHead.predict_by_feat`` up to its selection."""
    b = cls_scores[0].shape[0]
    priors = torch.cat(head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores],
                                                        dtype=cls_scores[0].dtype, device=cls_scores[0].device,
                                                        with_stride=True))
    flat = [torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, d) for m in maps], 1)
            for maps, d in ((cls_scores, head.cls_out_channels), (bbox_preds, 4), (objectnesses, 1))]
    return dict(boxes=head._bbox_decode(priors, flat[1]), scores=flat[0].sigmoid(),
                objectness=flat[2].squeeze(-1).sigmoid())


@torch.no_grad()
def pytorch_pre_nms(model, inputs: torch.Tensor, hw: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """The pre-NMS tensors of ``model`` for preprocessed ``inputs`` (B, 3, H, W), as float64 arrays."""
    feats = model.extract_feat(inputs)
    if getattr(model, 'with_rpn', False):
        boxes, scores = _dense_head(model.rpn_head, *model.rpn_head(feats), hw)
        out = dict(rpn_boxes=boxes, rpn_scores=scores)
    elif isinstance(model.bbox_head, YOLOXHead):
        out = _yolox(model.bbox_head, *model.bbox_head(feats))
    else:
        boxes, scores = _dense_head(model.bbox_head, *model.bbox_head(feats)[:2], hw)
        out = dict(boxes=boxes, scores=scores)
    return {k: v.double().numpy() for k, v in out.items()}
