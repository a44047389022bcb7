"""Comparing two detectors' outputs for the same input (ONNX Runtime vs PyTorch) independently of order.

Detections whose scores tie (to float precision) may come out in either order from two NMS implementations,
so rows are matched per class: each reference detection pairs with the unmatched candidate of its class with
the closest (score, box). The result is the worst box / score difference over matched pairs plus how many
detections found no partner (a count mismatch, or a tie at the ``max_per_img`` cut-off).
"""
from typing import Dict

import numpy as np


def match_detections(ref_boxes, ref_scores, ref_labels, boxes, scores, labels) -> Dict[str, float]:
    """``{'box': max |dbox| (px), 'score': max |dscore|, 'unmatched': n, 'count': (n_ref, n)}``."""
    ref_boxes, ref_scores, ref_labels = (np.asarray(a, dtype=np.float64) for a in (ref_boxes, ref_scores,
                                                                                  ref_labels))
    boxes, scores, labels = (np.asarray(a, dtype=np.float64) for a in (boxes, scores, labels))
    worst_box, worst_score, unmatched = 0.0, 0.0, 0
    for c in np.union1d(np.unique(ref_labels), np.unique(labels)):
        r, o = np.nonzero(ref_labels == c)[0], np.nonzero(labels == c)[0]
        free = list(o)
        for i in r[np.argsort(-ref_scores[r], kind='stable')]:
            if not free:
                unmatched += 1
                continue
            cost = np.abs(scores[free] - ref_scores[i]) * 1e3 + np.abs(boxes[free] - ref_boxes[i]).max(1)
            j = free.pop(int(np.argmin(cost)))
            worst_box = max(worst_box, float(np.abs(boxes[j] - ref_boxes[i]).max()))
            worst_score = max(worst_score, float(abs(scores[j] - ref_scores[i])))
        unmatched += len(free)
    return dict(box=worst_box, score=worst_score, unmatched=unmatched, count=(len(ref_scores), len(scores)))
