"""A loading transform that yields the corrupted image: from the VOC-C cache when given one, else rendered
on the fly with the same seeded function (so both paths give the same pixels for a lossless cache)."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile

from mmdet.registry import TRANSFORMS

from .corruptions import check_severities, corrupt_image, resolve_corruptions
from .voc_c import cached_image_path, read_manifest


@TRANSFORMS.register_module()
class LoadCorruptedImageFromFile(LoadImageFromFile):
    """Drop-in replacement for ``LoadImageFromFile`` that returns ``corruption`` at ``severity``.

    The corruption is applied to the image as loaded (BGR, native resolution), i.e. before ``Resize``, as in
    the published Pascal-C protocol; it is seeded by (``img_id``, corruption, severity, ``seed``) so every run
    and every worker sees the same corrupted image.

    Args:
        corruption (str): a name from :data:`~.corruptions.ALL_CORRUPTIONS`.
        severity (int): 1..5.
        cache_root (str, optional): a VOC-C cache (``tools/make_voc_c.py``); its file for the image is read
            instead of rendering. The cache's seed is used; a different explicit ``seed`` is an error.
        seed (int, optional): base seed of the on-the-fly rendering (default 0, the renderer's default).
        **kwargs: ``LoadImageFromFile`` arguments.
    """

    def __init__(self, corruption: str, severity: int, cache_root: Optional[str] = None,
                 seed: Optional[int] = None, to_float32: bool = False, **kwargs):
        super().__init__(to_float32=False, **kwargs)  # corrupt uint8 first, convert afterwards
        if self.color_type != 'color':
            raise ValueError(f"corruptions need 3-channel images; color_type={self.color_type!r} is not 'color'")
        self.corruption = resolve_corruptions([corruption])[0]
        if resolve_corruptions([corruption]) != [corruption]:
            raise ValueError(f'expected one corruption name, got group {corruption!r}')
        self.severity = check_severities([severity])[0]
        self.output_float32 = to_float32
        self.cache_root = cache_root
        if cache_root is not None:
            manifest = read_manifest(cache_root)
            if manifest is None:
                raise FileNotFoundError(f'{cache_root!r} is not a VOC-C cache (no voc_c.json); '
                                        'render one with tools/make_voc_c.py')
            if seed is not None and seed != manifest['seed']:
                raise ValueError(f'seed={seed} differs from the seed {manifest["seed"]} the cache {cache_root!r} '
                                 'was rendered with')
            self.seed, self.source_root, self.format = manifest['seed'], manifest['source_root'], manifest['format']
        else:
            self.seed = 0 if seed is None else int(seed)

    def _cached_path(self, img_path: str) -> str:
        rel = osp.relpath(osp.realpath(img_path), self.source_root)
        if rel.startswith('..'):
            raise ValueError(f'{img_path!r} is not under {self.source_root!r}, the source of the VOC-C cache '
                             f'{self.cache_root!r}')
        return cached_image_path(self.cache_root, self.corruption, self.severity, rel, self.format)

    def transform(self, results: dict) -> Optional[dict]:
        img_path = results['img_path']
        if self.cache_root is not None:
            cached = self._cached_path(img_path)
            if not osp.isfile(cached):
                raise FileNotFoundError(f'{cached!r} (the {self.corruption} s{self.severity} copy of {img_path!r}) '
                                        'is missing; finish the cache with tools/make_voc_c.py')
            results = super().transform(dict(results, img_path=cached))
            if results is not None:
                results['img_path'] = img_path
        else:
            results = super().transform(results)
            if results is not None:
                key = str(results.get('img_id', osp.splitext(osp.basename(img_path))[0]))
                results['img'] = corrupt_image(results['img'], self.corruption, self.severity, key, self.seed)
        if results is not None and self.output_float32:
            results['img'] = results['img'].astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(corruption={self.corruption!r}, severity={self.severity}, '
                f'cache_root={self.cache_root!r}, seed={self.seed}, imdecode_backend={self.imdecode_backend!r})')
