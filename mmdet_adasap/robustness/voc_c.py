"""Rendering the corrupted sets once, to disk: every (corruption, severity) copy of a VOC split (VOC-C) or of
the images of a COCO-format annotation file, cached for reuse.

Layout (``OUT_ROOT``)::

    voc_c.json                                    manifest: source root, format, seed, image key, library version
    image_keys.json                               COCO sets only: image path -> the image id it was seeded with
    <corruption>/<severity>/<year>/JPEGImages/<id>.<png|jpg>      (VOC; COCO: <file_name>.<png|jpg>)

The path under ``<corruption>/<severity>/`` is the image's path relative to the source (the VOCdevkit, or the
folder a COCO ``file_name`` is relative to), so the evaluation maps any image of the clean set to its corrupted
copy without an index. Each image is seeded by the id its dataset gives it (VOC: the file stem; COCO: the json's
image id), as the on-the-fly transform seeds it; the evaluation refuses a cache whose keys are not its dataset's. Images are corrupted
as the mm pipeline loads them (BGR via cv2, native resolution, before any resize), as the published
Pascal-C protocol did. The default ``png`` is lossless: a cached image is bit-identical to the one the
on-the-fly transform renders, so results never depend on whether the cache exists. ``jpg`` is ~3x smaller
but re-compresses every image (recorded in the manifest and in every result); with ``jpg`` each
``<corruption>/<severity>/`` is also a VOCdevkit that a stock VOC dataset config can point at
(``Annotations`` and ``ImageSets`` are symlinks to the source).

Every file is written to a temporary name and renamed into place, so an existing file is always complete:
an interrupted run is resumed by running the same command again.
"""
import json
import os
import os.path as osp
import time
from importlib.metadata import version
from multiprocessing import Pool
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import imagecorruptions
import mmcv
import numpy as np
from tqdm import tqdm

from ..utils.io import TMP_SUFFIX, atomic_write_bytes, atomic_write_json
from .corruptions import SEVERITIES, check_severities, corrupt_image, resolve_corruptions

MANIFEST = 'voc_c.json'
FORMATS = ('png', 'jpg')


def split_image_ids(data_root: str, years: Sequence[str], split: str) -> Dict[str, List[str]]:
    """Image ids of ``<data_root>/<year>/ImageSets/Main/<split>.txt`` for each year; clear errors if absent."""
    if not osp.isdir(data_root):
        raise FileNotFoundError(f'VOC data root {data_root!r} does not exist')
    ids = {}
    for year in years:
        split_file = osp.join(data_root, year, 'ImageSets', 'Main', f'{split}.txt')
        if not osp.isfile(split_file):
            raise FileNotFoundError(f'split file {split_file!r} does not exist (data root {data_root!r}, '
                                    f'year {year!r}, split {split!r})')
        with open(split_file) as f:
            ids[year] = [line.strip().split()[0] for line in f if line.strip()]
        if not ids[year]:
            raise ValueError(f'split file {split_file!r} lists no images')
    return ids


def cached_image_path(cache_root: str, corruption: str, severity: int, rel_path: str, fmt: str) -> str:
    """Where the corrupted copy of the source image at ``rel_path`` (relative to the source root) lives."""
    return osp.join(cache_root, corruption, str(int(severity)), osp.splitext(rel_path)[0] + '.' + fmt)


def read_manifest(cache_root: str) -> Optional[dict]:
    path = osp.join(cache_root, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_bgr(path: str) -> np.ndarray:
    """Decode an image exactly as mmcv's ``LoadImageFromFile`` does by default (cv2, colour, BGR)."""
    with open(path, 'rb') as f:
        img = mmcv.imfrombytes(f.read(), flag='color', backend='cv2')
    if img is None:
        raise ValueError(f'{path}: not a readable image')
    return img


def encode_image(img: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == 'jpg' else []
    ok, buf = cv2.imencode('.' + fmt, img, params)
    if not ok:
        raise RuntimeError(f'cv2 could not encode a {img.shape} image as {fmt}')
    return buf.tobytes()


def _render_one_image(job) -> int:
    """Worker: load one source image once and write each of its pending corrupted copies."""
    src, image_key, pending, fmt, jpeg_quality, seed = job
    img = load_bgr(src)
    for corruption, severity, dst in pending:
        out = corrupt_image(img, corruption, severity, image_key, base_seed=seed)
        atomic_write_bytes(dst, encode_image(out, fmt, jpeg_quality))
    return len(pending)


def _remove_stale_temporaries(out_root: str) -> None:
    for dirpath, _, files in os.walk(out_root):
        for name in files:
            if name.endswith(TMP_SUFFIX):
                os.remove(osp.join(dirpath, name))


IMAGE_KEYS = 'image_keys.json'  # COCO caches: path relative to the source -> the image id it was seeded with
KEY_KINDS = ('voc_id', 'coco_id')  # voc_id: the file stem (VOCDataset's img_id); coco_id: the json's image id


def _check_or_write_manifest(out_root: str, manifest: dict) -> None:
    old = read_manifest(out_root)
    if old is None:
        os.makedirs(out_root, exist_ok=True)
        atomic_write_json(osp.join(out_root, MANIFEST), manifest)
        return
    old = dict(old, image_key=old.get('image_key', 'voc_id'))  # a cache from before COCO sets: VOC's keys
    for key in ('source_root', 'format', 'jpeg_quality', 'seed', 'image_key'):
        if old.get(key) != manifest[key]:
            raise ValueError(f'{out_root!r} holds a corrupted set rendered with {key}={old.get(key)!r}, this run asks '
                             f'for {key}={manifest[key]!r}; render into another OUT_ROOT')


def cache_image_keys(cache_root: str) -> Optional[Dict[str, str]]:
    """The seed key of every image a COCO cache holds (path relative to its source -> image id); ``None`` for a
    VOC cache, whose key is the file stem (the id ``VOCDataset`` gives the image)."""
    manifest = read_manifest(cache_root) or {}
    if manifest.get('image_key', 'voc_id') == 'voc_id':
        return None
    path = osp.join(cache_root, IMAGE_KEYS)
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _merge_image_keys(out_root: str, images: Sequence[Tuple[str, str]]) -> None:
    """Record the key of each image (before any is rendered with it); an image of the cache that another json
    gives another id is an error: its cached copies were seeded with the old id."""
    keys = cache_image_keys(out_root) or {}
    for rel, key in images:
        if keys.setdefault(rel, key) != key:
            raise ValueError(f'{rel!r} was rendered into {out_root!r} as image id {keys[rel]}, this annotation file '
                             f'gives it id {key}; render into another OUT_ROOT')
    atomic_write_json(osp.join(out_root, IMAGE_KEYS), keys)


def render_corrupted(source_root: str, out_root: str, images: Sequence[Tuple[str, str]], what: str,
                     corruptions='benchmark', severities: Iterable[int] = SEVERITIES, workers: int = 1,
                     fmt: str = 'png', jpeg_quality: int = 95, seed: int = 0, show_progress: bool = True,
                     image_key: str = 'voc_id') -> dict:
    """Render the missing corrupted copies of ``images`` ((path relative to ``source_root``, seed key) pairs,
    listed by ``what``) into ``out_root``: resumable, deterministic, each image seeded by its key as the
    on-the-fly transform seeds it (the dataset's ``img_id``). Returns ``{'images', 'rendered', 'skipped',
    'seconds'}`` (counts of corrupted copies)."""
    corruptions, severities = resolve_corruptions(corruptions), check_severities(severities)
    if fmt not in FORMATS:
        raise ValueError(f'format {fmt!r} is not one of {FORMATS}')
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}')
    if image_key not in KEY_KINDS:
        raise ValueError(f'image_key must be one of {KEY_KINDS}, got {image_key!r}')
    manifest = dict(source_root=source_root, format=fmt, jpeg_quality=int(jpeg_quality) if fmt == 'jpg' else None,
                    seed=int(seed), image_key=image_key,
                    decode='mmcv.imfrombytes(flag=color, backend=cv2): BGR, native resolution',
                    layout='<corruption>/<severity>/<path relative to source_root>.<format>',
                    imagecorruptions=version('imagecorruptions-imaug'),
                    imagecorruptions_module=osp.dirname(imagecorruptions.__file__))
    _check_or_write_manifest(out_root, manifest)
    _remove_stale_temporaries(out_root)
    if image_key == 'coco_id':
        _merge_image_keys(out_root, images)
    jobs, skipped = [], 0
    for rel, key in images:
        pending = [(c, s, dst) for c in corruptions for s in severities
                   for dst in [cached_image_path(out_root, c, s, rel, fmt)] if not osp.exists(dst)]
        skipped += len(corruptions) * len(severities) - len(pending)
        src = osp.join(source_root, rel)
        if pending and not osp.isfile(src):
            raise FileNotFoundError(f'image {src!r} listed in {what} is missing')
        if pending:
            jobs.append((src, key, pending, fmt, jpeg_quality, seed))
    summary = _run_jobs(jobs, f'{len(corruptions)}x{len(severities)}', workers, show_progress)
    return dict(summary, images=len(images), skipped=skipped)


def _run_jobs(jobs: list, desc: str, workers: int, show_progress: bool) -> dict:
    total = sum(len(j[2]) for j in jobs)
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f'corrupted {desc}', unit='img', disable=not show_progress, dynamic_ncols=True)
    try:
        if workers > 1 and jobs:
            with Pool(workers) as pool:
                for n in pool.imap_unordered(_render_one_image, jobs, chunksize=1):
                    bar.update(n)
        else:
            for job in jobs:
                bar.update(_render_one_image(job))
    finally:
        bar.close()
    return dict(rendered=total, seconds=time.perf_counter() - start)


def render_voc_c(data_root: str, out_root: str, corruptions='benchmark', severities: Iterable[int] = SEVERITIES,
                 years: Sequence[str] = ('VOC2007',), split: str = 'test', workers: int = 1, fmt: str = 'png',
                 jpeg_quality: int = 95, seed: int = 0, show_progress: bool = True) -> dict:
    """Render the missing corrupted copies of a VOC split into ``out_root`` (resumable, deterministic): each
    image seeded by its id (VOCDataset's ``img_id``). Returns :func:`render_corrupted`'s summary."""
    source_root = osp.realpath(data_root)
    ids = split_image_ids(source_root, years, split)
    images = [(osp.join(year, 'JPEGImages', f'{i}.jpg'), i) for year, year_ids in ids.items() for i in year_ids]
    what = ', '.join(f'{year}/ImageSets/Main/{split}.txt' for year in ids)
    summary = render_corrupted(source_root, out_root, images, what, corruptions, severities, workers, fmt,
                               jpeg_quality, seed, show_progress, image_key='voc_id')
    if fmt == 'jpg':
        _link_annotations(source_root, out_root, resolve_corruptions(corruptions), check_severities(severities), ids)
    return summary


def render_coco_c(ann_file: str, img_root: str, out_root: str, corruptions='benchmark',
                  severities: Iterable[int] = SEVERITIES, workers: int = 1, fmt: str = 'png', jpeg_quality: int = 95,
                  seed: int = 0, show_progress: bool = True) -> dict:
    """The same for a COCO-format set: the images of ``ann_file`` under ``img_root`` (the folder ``file_name`` is
    relative to: a config's ``data_root`` + ``data_prefix.img``), each seeded by its image id, as ``CocoDataset``
    gives it. The cache is read by the same loop and transform as a VOC one."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
    if not osp.isdir(img_root):
        raise FileNotFoundError(f'image folder {img_root!r} does not exist')
    with open(ann_file) as f:
        listed = json.load(f).get('images') or []
    if not listed:
        raise ValueError(f'{ann_file!r} lists no images')
    images = [(osp.normpath(img['file_name']), str(img['id'])) for img in listed]
    return render_corrupted(osp.realpath(img_root), out_root, images, ann_file, corruptions, severities, workers, fmt,
                            jpeg_quality, seed, show_progress, image_key='coco_id')


def _link_annotations(source_root: str, out_root: str, corruptions, severities, ids) -> None:
    """Make each ``<corruption>/<severity>`` a VOCdevkit of its own (annotations shared by symlink)."""
    for c in corruptions:
        for s in severities:
            for year in ids:
                year_dir = osp.join(out_root, c, str(s), year)
                os.makedirs(osp.join(year_dir, 'JPEGImages'), exist_ok=True)
                for sub in ('Annotations', 'ImageSets'):
                    link = osp.join(year_dir, sub)
                    if not osp.lexists(link):
                        os.symlink(osp.join(source_root, year, sub), link)


def missing_cached_images(cache_root: str, corruption: str, severity: int, rel_paths: Iterable[str]) -> List[str]:
    """The cached files of one set that do not exist yet (empty list: the set is complete)."""
    manifest = read_manifest(cache_root)
    if manifest is None:
        raise FileNotFoundError(f'{cache_root!r} is not a VOC-C cache (no {MANIFEST}); '
                                'render one with tools/make_voc_c.py')
    return [p for p in (cached_image_path(cache_root, corruption, severity, r, manifest['format']) for r in rel_paths)
            if not osp.exists(p)]
