"""A deterministic, Pascal-VOC-layout synthetic detection set: the embedded default for demo and tests.

The content is chosen so that detection and robustness are not trivial: classes differ by *shape* only
(colour and texture are random per object and shared across classes), objects range from tiny to large with
varied aspect and rotation, overlap and occlude each other, backgrounds are textured and cluttered with
shape-like distractors, and small or heavily occluded objects are marked ``difficult`` as in VOC.
"""
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import cv2
import numpy as np
from tqdm import tqdm

SYNTHETIC_VOC_CLASSES = ('disc', 'box', 'triangle', 'star', 'ring', 'cross')
SYNTHETIC_VOC_PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180),
                         (70, 240, 240)]
SPLIT_NAMES = ('train', 'val', 'trainval', 'test')


@dataclass
class SyntheticVOCSpec:
    """How much to generate. Each year gets ``trainval`` images (split evenly into train / val, as in VOC)
    and ``test`` images; VOC2007 test is the evaluation split of every config."""
    trainval: Dict[str, int] = field(default_factory=lambda: {'VOC2007': 600, 'VOC2012': 600})
    test: Dict[str, int] = field(default_factory=lambda: {'VOC2007': 300, 'VOC2012': 50})
    min_side: int = 224
    max_side: int = 320
    max_objects: int = 5
    seed: int = 0
    jpeg_quality: int = 92

    def __post_init__(self):
        for name, counts in (('trainval', self.trainval), ('test', self.test)):
            for year, n in counts.items():
                if year not in ('VOC2007', 'VOC2012'):
                    raise ValueError(f'{name}: unknown VOC year {year!r}; use VOC2007 or VOC2012')
                if n < 0:
                    raise ValueError(f'{name}[{year}] = {n}: image counts must be >= 0')
        if not 32 <= self.min_side <= self.max_side:
            raise ValueError(f'need 32 <= min_side <= max_side, got {self.min_side}, {self.max_side}')
        if self.max_objects < 1:
            raise ValueError(f'max_objects must be >= 1, got {self.max_objects}')


# ----------------------------------------------------------------------------------------------- drawing
def _shape_mask(cls_name: str, canvas: Tuple[int, int], cx: float, cy: float, w: float, h: float,
                angle: float) -> np.ndarray:
    """Binary mask of one object. ``w``/``h`` are the extents before rotation."""
    mask = np.zeros(canvas, np.uint8)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def poly(points):  # points in unit box [-1, 1]^2 -> image coordinates
        pts = np.asarray(points, np.float64) * [w / 2, h / 2]
        pts = pts @ rot.T + [cx, cy]
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_AA, shift=4)

    def ellipse(scale=1.0, value=1):
        cv2.ellipse(mask, (int(round(cx * 16)), int(round(cy * 16))),
                    (max(1, int(w / 2 * scale * 16)), max(1, int(h / 2 * scale * 16))),
                    np.degrees(angle), 0, 360, value, -1, cv2.LINE_AA, shift=4)

    if cls_name == 'disc':
        ellipse()
    elif cls_name == 'ring':
        ellipse()
        ellipse(scale=0.55, value=0)
    elif cls_name == 'box':
        poly([(-1, -1), (1, -1), (1, 1), (-1, 1)])
    elif cls_name == 'triangle':
        poly([(0, -1), (1, 1), (-1, 1)])
    elif cls_name == 'star':
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        poly(np.stack([r * np.cos(t), r * np.sin(t)], 1))
    elif cls_name == 'cross':
        a = 0.32
        poly([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a),
              (-1, -a), (-a, -a)])
    else:
        raise ValueError(f'unknown synthetic class {cls_name!r}')
    return mask


TEXTURE_KINDS = ('solid', 'stripes', 'checks', 'dots', 'noise', 'grid')
# Each class prefers one texture (used with CLASS_TEXTURE_PROB, else a random one): texture is a real but
# unreliable cue, as in natural classes, and one that blur/noise corruptions destroy while shape survives.
CLASS_TEXTURE = {'disc': 'solid', 'box': 'stripes', 'triangle': 'checks', 'star': 'dots', 'ring': 'noise',
                 'cross': 'grid'}
CLASS_TEXTURE_PROB = 0.85


def _texture(rng: np.random.Generator, shape: Tuple[int, int], kind: Optional[str] = None) -> np.ndarray:
    """A colour texture (solid, stripes, checks, dots or smooth noise; random kind unless given), BGR uint8."""
    h, w = shape
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    kind = TEXTURE_KINDS.index(kind) if kind is not None else rng.integers(len(TEXTURE_KINDS))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        t = np.zeros((h, w), np.float32)
    elif kind == 1:
        period, theta = rng.uniform(4, 16), rng.uniform(0, np.pi)
        t = (np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == 2:
        period = rng.uniform(4, 20)
        t = ((xx // period + yy // period) % 2).astype(np.float32)
    elif kind == 3:
        period = rng.uniform(5, 14)
        t = ((np.hypot(xx % period - period / 2, yy % period - period / 2)) < period / 4).astype(np.float32)
    elif kind == 4:
        low = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        t = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        period = rng.uniform(6, 16)
        t = ((xx % period < 2) | (yy % period < 2)).astype(np.float32)
    t = np.clip(t, 0, 1)[..., None]
    return (c1 * (1 - t) + c2 * t).astype(np.uint8)


def _background(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    h, w = shape
    img = _texture(rng, shape).astype(np.float32)
    # low-frequency illumination and a second blended texture make backgrounds non-uniform
    light = cv2.resize(rng.uniform(0.6, 1.3, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = img * light[..., None]
    img = 0.6 * img + 0.4 * _texture(rng, shape).astype(np.float32)
    # backgrounds are textured but lower in contrast than objects, as natural scenes mostly are
    img = img.mean((0, 1)) + (img - img.mean((0, 1))) * rng.uniform(0.25, 0.7)
    # clutter: lines and partial arcs that share colours/edges with objects but are not objects
    for _ in range(rng.integers(2, 9)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        if rng.random() < 0.5:
            p2 = tuple(int(v) for v in rng.integers(0, [w, h]))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            axes = tuple(int(v) for v in rng.integers(4, max(5, min(h, w) // 4), 2))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(img, p1, axes, 0, start, start + rng.uniform(60, 200), color,
                        int(rng.integers(1, 3)), cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class SyntheticObject:
    name: str
    bbox: Tuple[int, int, int, int]  # 1-based inclusive VOC pixel coordinates
    difficult: bool
    truncated: bool


def render_image(rng: np.random.Generator, spec: SyntheticVOCSpec) -> Tuple[np.ndarray, List[SyntheticObject]]:
    """One image (BGR uint8) and its VOC objects."""
    h, w = (int(v) for v in rng.integers(spec.min_side, spec.max_side + 1, 2))
    img = _background(rng, (h, w))
    n = int(rng.integers(1, spec.max_objects + 1))
    masks, names = [], []
    for _ in range(n):
        name = SYNTHETIC_VOC_CLASSES[rng.integers(len(SYNTHETIC_VOC_CLASSES))]
        size = float(np.exp(rng.uniform(np.log(0.08), np.log(0.6)))) * min(h, w)
        aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        ow, oh = size * np.sqrt(aspect), size / np.sqrt(aspect)
        # centres may fall slightly outside so that some objects are truncated by the border
        cx, cy = rng.uniform(-0.1 * ow, w + 0.1 * ow), rng.uniform(-0.1 * oh, h + 0.1 * oh)
        angle = float(rng.uniform(-np.pi / 6, np.pi / 6)) if name in ('disc', 'ring') else float(
            rng.uniform(-np.pi, np.pi))
        mask = _shape_mask(name, (h, w), cx, cy, ow, oh, angle)
        if mask.sum() < 16:
            continue
        tex = _texture(rng, (h, w), CLASS_TEXTURE[name] if rng.random() < CLASS_TEXTURE_PROB else None)
        # a darker/lighter rim keeps shapes separable from same-coloured backgrounds only sometimes
        if rng.random() < 0.5:
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
            tex[edge] = rng.integers(0, 256, 3)
        img[mask.astype(bool)] = tex[mask.astype(bool)]
        masks.append(mask.astype(bool))
        names.append(name)
    # occlusion: later objects cover earlier ones
    visible = [m.copy() for m in masks]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            visible[i] &= ~masks[j]
    objects = []
    for name, mask, vis in zip(names, masks, visible):
        full, seen = int(mask.sum()), int(vis.sum())
        if seen < 0.25 * full or seen < 12:
            continue  # hidden: no annotation, as an annotator would not see it
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        truncated = x0 == 0 or y0 == 0 or x1 == w - 1 or y1 == h - 1
        small = min(x1 - x0 + 1, y1 - y0 + 1) < 16
        objects.append(
            SyntheticObject(name, (x0 + 1, y0 + 1, x1 + 1, y1 + 1), difficult=small or seen < 0.6 * full,
                            truncated=truncated))
    return img, objects


def voc_xml(folder: str, filename: str, width: int, height: int, objects: Sequence[SyntheticObject]) -> str:
    lines = ['<annotation>', f'\t<folder>{folder}</folder>', f'\t<filename>{escape(filename)}</filename>',
             '\t<source>\n\t\t<database>mmdet-adasap synthetic VOC</database>\n\t</source>',
             f'\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>',
             '\t<segmented>0</segmented>']
    for obj in objects:
        x0, y0, x1, y1 = obj.bbox
        lines += ['\t<object>', f'\t\t<name>{escape(obj.name)}</name>', '\t\t<pose>Unspecified</pose>',
                  f'\t\t<truncated>{int(obj.truncated)}</truncated>', f'\t\t<difficult>{int(obj.difficult)}</difficult>',
                  f'\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<xmax>{x1}</xmax>\n'
                  f'\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>', '\t</object>']
    lines.append('</annotation>\n')
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------- the tree
def _image_ids(spec: SyntheticVOCSpec, year: str) -> Dict[str, List[str]]:
    prefix = '' if year == 'VOC2007' else '2012_'
    n_tv, n_test = spec.trainval.get(year, 0), spec.test.get(year, 0)
    ids = [f'{prefix}{i + 1:06d}' for i in range(n_tv + n_test)]
    order = np.random.default_rng([spec.seed, int(year[3:]), 1]).permutation(n_tv + n_test)
    test = sorted(ids[i] for i in order[:n_test])
    trainval = sorted(ids[i] for i in order[n_test:])
    train = trainval[0::2]
    val = trainval[1::2]
    return {'train': train, 'val': val, 'trainval': trainval, 'test': test}


def _write_one(job) -> None:
    spec, root, year, img_id = job
    rng = np.random.default_rng([spec.seed, int(year[3:]), int(img_id.split('_')[-1])])
    img, objects = render_image(rng, spec)
    h, w = img.shape[:2]
    cv2.imwrite(osp.join(root, year, 'JPEGImages', f'{img_id}.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
    with open(osp.join(root, year, 'Annotations', f'{img_id}.xml'), 'w') as f:
        f.write(voc_xml(year, f'{img_id}.jpg', w, h, objects))


def make_synthetic_voc(out_dir: str, spec: Optional[SyntheticVOCSpec] = None, overwrite: bool = False,
                       workers: int = 1, show_progress: bool = True) -> str:
    """Write ``out_dir/VOCdevkit`` and return its path.

    Refuses to touch an existing ``VOCdevkit`` unless ``overwrite``; the tree is written into a temporary
    sibling and moved into place only when complete, so an interrupted run never leaves a half data set.
    """
    spec = spec or SyntheticVOCSpec()
    devkit = osp.join(out_dir, 'VOCdevkit')
    if osp.exists(devkit) and not overwrite:
        raise FileExistsError(f'{devkit} already exists; pass overwrite=True (--overwrite) to replace it')
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.VOCdevkit-partial-', dir=out_dir)
    try:
        jobs = []
        for year in ('VOC2007', 'VOC2012'):
            splits = _image_ids(spec, year)
            for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
                os.makedirs(osp.join(tmp, year, sub), exist_ok=True)
            for split in SPLIT_NAMES:
                with open(osp.join(tmp, year, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
                    f.writelines(f'{i}\n' for i in splits[split])
            jobs += [(spec, tmp, year, i) for i in splits['trainval'] + splits['test']]
        bar = tqdm(total=len(jobs), desc='synthetic VOC', unit='img', disable=not show_progress)
        if workers > 1:
            with Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=8):
                    bar.update()
        else:
            for job in jobs:
                _write_one(job)
                bar.update()
        bar.close()
        if osp.exists(devkit):
            shutil.rmtree(devkit)
        os.replace(tmp, devkit)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return devkit
