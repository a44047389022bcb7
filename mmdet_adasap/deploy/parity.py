"""Judging two runtimes' outputs for the same input (ONNX Runtime vs PyTorch): tolerances, pre-NMS tensors,
kept detections.

Two stages, so that near-tied scores cannot decide the verdict:

1. **Pre-NMS tensors** (every prior's decoded box and score, before any selection; ``pre_nms``): no order and
   no tie is involved, so they must agree element by element: boxes within ``box_rel`` of the longer input
   side, scores (probabilities) within ``score``.
2. **Kept detections** (after top-k, NMS, ``max_per_img``): the ONNX Runtime set must be a valid NMS result
   (no two kept boxes of one class overlap above the NMS IoU threshold), and the two sets are matched per class
   within the tolerances. A detection left without a partner is accepted only when a tie decides it: its
   score within ``2 * score`` (two scores each within ``score`` of the truth may come out in either order)
   of an overlapping same-class detection of the other runtime that could have suppressed it (or their IoU
   within ``iou`` of the threshold), of the ``score_thr`` / per-level ``nms_pre`` / ``max_per_img`` cut-off,
   or of a detection on the same box with another class (the best class of a prior tied), or when it was
   suppressed in the other runtime by a detection whose own presence a tie explains.

Every elementwise comparison goes through :func:`abs_diff`: equal infinities (same sign) and NaNs at the same
position count as equal (a diverged model gives ``-inf`` in both runtimes), any other non-finite value as an
infinite difference.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """The parity check's tolerances, in one place.

    ``box_rel``: box coordinates, as a fraction of the longer input side, or of the box's largest coordinate
    where that is larger (float32 pixel coordinates of a few hundred carry ~1.5e-5 px per rounding and two runtimes'
    convolutions round differently: measured worst 1.6e-4 px at 256 px for the demo SSD, 2.9e-3 px at 128 px
    for Faster R-CNN's 50 layers, 2.3e-5 of the side; an unclipped head such as YOLOX's puts randomly
    initialised boxes tens of thousands of pixels outside the image, where float32 itself resolves ~1e-2 px).
    ``score``: scores and objectness (probabilities), absolute. ``iou``: how close to the NMS threshold an IoU
    may be for the two runtimes to decide it differently (boxes within ``box_rel`` move an IoU by ~1e-4 for
    boxes of a tenth of the side)."""
    box_rel: float = 1e-4
    score: float = 1e-4
    iou: float = 1e-3


TOLERANCE = Tolerance()


@dataclass
class ParityReport:
    """The verdict: ``ok`` when ``failures`` is empty; the worst differences seen either way."""
    side: int
    tolerance: Tolerance
    pre_nms: Dict[str, float] = field(default_factory=dict)  # name -> worst |diff| (boxes: relative, as box_rel)
    box_rel: float = 0.0  # worst matched kept box difference, of max(side, |coordinate|)
    score: float = 0.0  # worst matched kept score difference
    detections: int = 0  # kept by PyTorch
    matched: int = 0
    tie_explained: int = 0  # detections without a partner whose presence a tie decides
    failures: List[str] = field(default_factory=list)
    images: str = ''  # where the compared images came from (real, from which dataset, or random and why)

    @property
    def ok(self) -> bool:
        return not self.failures

    def verdict(self) -> str:
        """One line: PASS / FAIL and how many kept detections were compared, saying so when none were (NMS
        then went unchecked)."""
        head = 'PASS' if self.ok else f'FAIL ({len(self.failures)} differences beyond tolerance)'
        if self.detections == 0 and self.ok:
            return (f'{head}, but 0 kept detections compared: NMS not exercised (no score above score_thr on '
                    'these images)')
        if self.detections == 0:
            return f'{head}; PyTorch kept 0 detections on these images'
        if self.matched == 0:
            return (f'{head}, but 0 of {self.detections} kept detections matched ({self.tie_explained} decided by '
                    'ties): the kept boxes themselves were not compared')
        return (f'{head}: {self.matched}/{self.detections} kept detections matched, {self.tie_explained} decided '
                'by ties')

    def summary(self) -> str:
        pre = ', '.join(f'{k} {v:.1e}' for k, v in self.pre_nms.items())
        return (f'{self.images + ": " if self.images else ""}pre-NMS max |diff| ({pre}); kept: '
                f'{self.matched}/{self.detections} matched, '
                f'{self.tie_explained} decided by ties, max |dbox| {self.box_rel:.1e}, max |dscore| '
                f'{self.score:.1e}; tolerances: boxes {self.tolerance.box_rel:.0e} of max(input side '
                f'{self.side} px, |box coordinates|), scores {self.tolerance.score:.0e}')


def abs_diff(a, b) -> np.ndarray:
    """``|a - b|`` elementwise (float64), 0 where both are the same infinity or both NaN; ``inf`` where only
    one is non-finite or the infinities differ in sign (``inf - inf`` would be NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid='ignore', over='ignore'):
        diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))


def finite_magnitude(a: np.ndarray) -> np.ndarray:
    """``|a|`` with non-finite values as 0: what a coordinate's float32 resolution scales with (an infinite
    coordinate must not make every difference of its box relative to infinity)."""
    a = np.asarray(a, dtype=np.float64)
    return np.abs(np.where(np.isfinite(a), a, 0.0))


# ----------------------------------------------------------------------------------------------- stage 1
def compare_pre_nms(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], side: int,
                    tol: Tolerance = TOLERANCE) -> tuple:
    """``({name: worst diff}, [failure messages])``: tensors named ``*boxes`` relative to ``side`` (or to the
    coordinate where it is larger), the rest (probabilities) absolute."""
    worst, failures = {}, []
    for name, a in ref.items():
        b = np.asarray(got[name], dtype=np.float64)
        if a.shape != b.shape:
            failures.append(f'pre-NMS {name!r}: PyTorch gives shape {a.shape}, ONNX Runtime {b.shape}')
            continue
        is_box = name.endswith('boxes')
        scale, limit = (np.maximum(float(side), finite_magnitude(a).max(-1, keepdims=True)), tol.box_rel) \
            if is_box else (1.0, tol.score)
        diff = abs_diff(a, b) / scale
        worst[name] = float(diff.max()) if diff.size else 0.0
        if worst[name] > limit:
            at = np.unravel_index(int(diff.argmax()), diff.shape)
            where = f'image {at[0]}, prior {at[1]}' + (f', {"coordinate" if is_box else "class"} {at[2]}'
                                                       if len(at) > 2 else '')
            unit = f' of max(input side, |box coordinates|) ({float(abs_diff(a[at], b[at])):.3g} px)' \
                if is_box else ''
            failures.append(f'pre-NMS {name!r} differs by {worst[name]:.2e}{unit} at {where}: PyTorch '
                            f'{a[at]:.6g}, ONNX Runtime {b[at]:.6g}; tolerance {limit:.0e}')
    return worst, failures


def level_cuts(scores: np.ndarray, level_sizes: Sequence[int], nms_pre: int) -> np.ndarray:
    """Per image, the lowest score each level's top-``nms_pre`` selection keeps (where it drops any):
    ``scores`` (B, N, C) pre-NMS -> (B, L) (NaN where a level keeps every pair)."""
    cuts = np.full((scores.shape[0], len(level_sizes)), np.nan)
    start = 0
    for i, size in enumerate(level_sizes):
        flat = scores[:, start:start + size].reshape(scores.shape[0], -1)
        if 0 < nms_pre < flat.shape[1]:
            cuts[:, i] = -np.partition(-flat, nms_pre - 1, axis=1)[:, nms_pre - 1]
        start += size
    return cuts
