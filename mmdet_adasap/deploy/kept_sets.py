"""Comparing two runtimes' kept detections (after NMS) for one image, robustly to tied scores.

Detections are ``(boxes (n, 4), scores (n,), labels (n,))`` in input pixels. :func:`judge_kept` is the
parity check's second stage (the rules are in ``parity``'s docstring); :func:`match_detections` is the plain
order-independent pairing used where only the worst differences are wanted. Every elementwise difference is
``parity.abs_diff`` (equal infinities and NaNs at the same position are equal).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .parity import abs_diff, finite_magnitude

RUNTIMES = ('PyTorch', 'ONNX Runtime')


class Detections(NamedTuple):
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, boxes, scores, labels) -> 'Detections':
        return cls(*(np.asarray(a, dtype=np.float64).reshape(shape) for a, shape in
                     ((boxes, (-1, 4)), (scores, (-1, )), (labels, (-1, )))))


def box_tol_px(boxes: np.ndarray, side: int, box_rel: float) -> np.ndarray:
    """Per box (n, 4) -> (n,): ``box_rel`` of the longer input side, or of the box's largest coordinate where
    that is larger (float32 resolves a coordinate to a fixed fraction of its magnitude)."""
    return box_rel * np.maximum(float(side), finite_magnitude(boxes).max(-1) if len(boxes) else 0.0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), x1 y1 x2 y2 (mmcv's NMS: no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    with np.errstate(invalid='ignore', over='ignore'):  # infinite boxes (a diverged model): IoU 0
        inter = np.prod(np.clip(rb - lt, 0, None), -1)
        area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
        union = area(a)[:, None] + area(b)[None, :] - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ref: Detections, got: Detections, box_tol: np.ndarray, score_tol: float) -> List[tuple]:
    """Pairs ``(i, j)`` of one class within both tolerances, the closest pairs first, each detection once."""
    pairs = []
    for c in np.intersect1d(ref.labels, got.labels):
        r, o = np.nonzero(ref.labels == c)[0], np.nonzero(got.labels == c)[0]
        box = abs_diff(ref.boxes[r][:, None], got.boxes[o][None]).max(-1) / box_tol[r][:, None]
        cost = np.maximum(box, abs_diff(ref.scores[r][:, None], got.scores[o][None]) / score_tol)
        used_r, used_o = set(), set()
        for flat in np.argsort(cost, axis=None, kind='stable'):
            i, j = np.unravel_index(flat, cost.shape)
            if cost[i, j] > 1:
                break
            if i not in used_r and j not in used_o:
                used_r.add(i)
                used_o.add(j)
                pairs.append((int(r[i]), int(o[j])))
    return pairs


def _overlap_failures(got: Detections, iou_thr: float, iou_tol: float, image: int) -> List[str]:
    """ONNX Runtime's kept set must be an NMS result: no two kept boxes of one class above the threshold."""
    failures = []
    for c in np.unique(got.labels):
        idx = np.nonzero(got.labels == c)[0]
        iou = np.triu(iou_matrix(got.boxes[idx], got.boxes[idx]), 1)
        if iou.size and iou.max() > iou_thr + iou_tol:
            i, j = np.unravel_index(int(iou.argmax()), iou.shape)
            failures.append(f'image {image}: ONNX Runtime kept two class-{int(c)} boxes overlapping with IoU '
                            f'{iou[i, j]:.3f} > the NMS threshold {iou_thr} (scores {got.scores[idx[i]]:.4g}, '
                            f'{got.scores[idx[j]]:.4g}): its NMS does not do what the config\'s does')
    return failures


def _foreign_failures(got: Detections, candidates, side: int, tol, image: int) -> List[str]:
    """Every ONNX Runtime detection must be one of PyTorch's pre-NMS candidates (a box of every prior, a score per
    class): ``candidates`` = (boxes (N, 4), scores (N, C))."""
    boxes, scores = candidates
    limit = box_tol_px(boxes, side, tol.box_rel)
    failures = []
    for i in range(len(got.scores)):
        dist = abs_diff(boxes, got.boxes[i]).max(-1)
        near = dist <= limit
        c = int(got.labels[i])
        if not (near & (abs_diff(scores[:, c], got.scores[i]) <= tol.score)).any():
            failures.append(f'image {image}: ONNX Runtime kept {_describe(got, i)}, which is none of PyTorch\'s '
                            f'pre-NMS candidates (nearest box {dist.min():.3g} px away, {near.sum()} boxes within '
                            f'{tol.box_rel:.0e} of the side): the graph selects or gathers differently')
    return failures


def _directly_tied(d: int, a: Detections, b: Detections, ious: np.ndarray, post: dict, cuts: np.ndarray,
                   window: float, iou_tol: float, box_tol: np.ndarray) -> bool:
    """Whether a tie (in score or IoU) can decide that ``a``'s detection ``d`` is missing from ``b``."""
    s, thr = a.scores[d], post['iou_threshold']
    full = len(b.scores) >= post['max_per_img']
    if s <= post['score_thr'] + window or (full and s <= b.scores.min() + window):
        return True  # at the score threshold, or at the max_per_img cut-off
    if np.any(abs_diff(cuts[np.isfinite(cuts)], s) <= window):
        return True  # at a level's nms_pre cut-off
    same = b.labels == a.labels[d]
    tied = abs_diff(b.scores, s) <= window
    suppressor = same & (ious[d] > thr - iou_tol) & (tied | (ious[d] <= thr + iou_tol))
    relabelled = ~same & tied & (abs_diff(b.boxes, a.boxes[d]).max(-1) <= box_tol[d])
    return bool(suppressor.any() or relabelled.any())


def _describe(d: Detections, i: int) -> str:
    return f'class {int(d.labels[i])} score {d.scores[i]:.4g} box [{", ".join(f"{v:.1f}" for v in d.boxes[i])}]'


def judge_kept(ref: Detections, got: Detections, post: dict, side: int, tol, cuts: Sequence[float] = (),
               candidates: Optional[tuple] = None, image: int = 0) -> Dict[str, object]:
    """``{'matched', 'tie_explained', 'box_rel', 'score', 'failures'}`` for PyTorch's kept detections ``ref``
    and ONNX Runtime's ``got`` of one image; ``post`` holds ``iou_threshold``, ``score_thr``,
    ``max_per_img``; ``cuts`` the per-level ``nms_pre`` cut-off scores; ``candidates`` PyTorch's pre-NMS
    (boxes (N, 4), scores (N, C)) where the kept detections come from them; ``tol`` a ``parity.Tolerance``."""
    window = 2 * tol.score
    failures = _overlap_failures(got, post['iou_threshold'], tol.iou, image)
    if candidates is not None:
        failures += _foreign_failures(got, candidates, side, tol, image)[:3]
    sets = (ref, got)
    box_tol = [box_tol_px(d.boxes, side, tol.box_rel) for d in sets]
    pairs = _match(ref, got, box_tol[0], tol.score)
    unmatched = [sorted(set(range(len(s.scores))) - {p[k] for p in pairs}) for k, s in enumerate(sets)]
    iou_ref_got = iou_matrix(ref.boxes, got.boxes)
    ious = (iou_ref_got, iou_ref_got.T)  # ious[k][d, e]: detection d of sets[k] with e of the other
    cuts = np.asarray(cuts, dtype=np.float64)
    explained = [{d for d in unmatched[k] if _directly_tied(d, sets[k], sets[1 - k], ious[k], post, cuts, window,
                                                            tol.iou, box_tol[k])} for k in (0, 1)]
    changed = True
    while changed:  # suppressed in the other runtime by a detection whose own presence a tie decides
        changed = False
        for k in (0, 1):
            a, b = sets[k], sets[1 - k]
            for d in set(unmatched[k]) - explained[k]:
                if any(b.labels[e] == a.labels[d] and ious[k][d, e] > post['iou_threshold'] - tol.iou
                       and b.scores[e] >= a.scores[d] - window for e in explained[1 - k]):
                    explained[k].add(d)
                    changed = True
    for k in (0, 1):
        left = [d for d in unmatched[k] if d not in explained[k]]
        for d in left[:3]:
            failures.append(f'image {image}: {RUNTIMES[k]} kept {_describe(sets[k], d)} that {RUNTIMES[1 - k]} did '
                            f'not, and no tie decides it{_closest(sets[k], sets[1 - k], d, side)} (tolerances: '
                            f'scores tied within {window:.0e}, IoU within {tol.iou:.0e} of {post["iou_threshold"]})')
        if len(left) > 3:
            failures.append(f'image {image}: {len(left) - 3} more detections of {RUNTIMES[k]} without a partner')
    diffs = [(abs_diff(ref.boxes[i], got.boxes[j]).max() / box_tol[0][i] * tol.box_rel,
              float(abs_diff(ref.scores[i], got.scores[j]))) for i, j in pairs]
    return dict(matched=len(pairs), tie_explained=len(explained[0]) + len(explained[1]), failures=failures,
                box_rel=max((d[0] for d in diffs), default=0.0), score=max((d[1] for d in diffs), default=0.0))


def _closest(a: Detections, b: Detections, d: int, side: int) -> str:
    same = np.nonzero(b.labels == a.labels[d])[0]
    if not len(same):
        return ' (the other kept no detection of that class)'
    dist = abs_diff(b.boxes[same], a.boxes[d]).max(-1)
    e = same[int(np.argmin(dist))]
    return (f' (the closest of that class differs by {dist.min():.3g} px ({dist.min() / side:.1e} of the side) in box '
            f'and {float(abs_diff(b.scores[e], a.scores[d])):.2e} in score)')


def match_detections(ref_boxes, ref_scores, ref_labels, boxes, scores, labels) -> Dict[str, float]:
    """Order-independent pairing without tolerances: each reference detection (best first) pairs with the
    unmatched candidate of its class with the closest (score, box). ``{'box': max |dbox| (px), 'score': max
    |dscore|, 'unmatched': n, 'count': (n_ref, n)}``."""
    ref, got = Detections.of(ref_boxes, ref_scores, ref_labels), Detections.of(boxes, scores, labels)
    worst_box, worst_score, unmatched = 0.0, 0.0, 0
    for c in np.union1d(np.unique(ref.labels), np.unique(got.labels)):
        r, o = np.nonzero(ref.labels == c)[0], np.nonzero(got.labels == c)[0]
        free = list(o)
        for i in r[np.argsort(-ref.scores[r], kind='stable')]:
            if not free:
                unmatched += 1
                continue
            cost = abs_diff(got.scores[free], ref.scores[i]) * 1e3 + abs_diff(got.boxes[free], ref.boxes[i]).max(1)
            j = free.pop(int(np.argmin(cost)))
            worst_box = max(worst_box, float(abs_diff(got.boxes[j], ref.boxes[i]).max()))
            worst_score = max(worst_score, float(abs_diff(got.scores[j], ref.scores[i])))
        unmatched += len(free)
    return dict(box=worst_box, score=worst_score, unmatched=unmatched, count=(len(ref.scores), len(got.scores)))
