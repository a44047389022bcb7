"""The corruption catalogue (ImageNet-C / Pascal-C) and the one seeded function that applies a corruption.

Everything that corrupts an image (the cache renderer and the on-the-fly transform) goes through
:func:`corrupt_image`, so a cached image and an on-the-fly one are the same array for the same
(image id, corruption, severity, seed).
"""
import hashlib
from typing import Iterable, List, Union

import numpy as np

# Hendrycks & Dietterich (ImageNet-C) order; Michaelis et al. 2019 use the same 15 for Pascal-C.
CORRUPTION_GROUPS = {
    'noise': ('gaussian_noise', 'shot_noise', 'impulse_noise'),
    'blur': ('defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur'),
    'weather': ('snow', 'frost', 'fog', 'brightness'),
    'digital': ('contrast', 'elastic_transform', 'pixelate', 'jpeg_compression'),
}
BENCHMARK_CORRUPTIONS = tuple(c for group in CORRUPTION_GROUPS.values() for c in group)
# the "validation" corruptions of ImageNet-C, kept out of mPC; one per group
HOLDOUT_GROUPS = {'noise': 'speckle_noise', 'blur': 'gaussian_blur', 'weather': 'spatter', 'digital': 'saturate'}
HOLDOUT_CORRUPTIONS = tuple(HOLDOUT_GROUPS.values())
ALL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + HOLDOUT_CORRUPTIONS
SEVERITIES = (1, 2, 3, 4, 5)

# only these two take a seed argument; every other corruption draws from numpy's global RNG
_SEED_KWARG = ('impulse_noise', 'glass_blur')


def corruption_group(name: str) -> str:
    """'noise' | 'blur' | 'weather' | 'digital' for a benchmark or holdout corruption."""
    for group, members in CORRUPTION_GROUPS.items():
        if name in members or HOLDOUT_GROUPS[group] == name:
            return group
    raise ValueError(f'unknown corruption {name!r}; known: {", ".join(ALL_CORRUPTIONS)}')


def is_holdout(name: str) -> bool:
    corruption_group(name)  # validates
    return name in HOLDOUT_CORRUPTIONS


def resolve_corruptions(selection: Union[str, Iterable[str]]) -> List[str]:
    """Expand a selection into corruption names, in catalogue order, without duplicates.

    ``selection`` is a name or a list of names, each one of ``benchmark`` (the 15 of mPC), ``holdout`` (the 4
    validation corruptions), ``all`` (19), a group (``noise``/``blur``/``weather``/``digital``: its benchmark
    members) or a corruption name.
    """
    items = [selection] if isinstance(selection, str) else list(selection)
    if not items:
        raise ValueError('empty corruption selection')
    chosen = set()
    for item in items:
        if item == 'benchmark':
            chosen.update(BENCHMARK_CORRUPTIONS)
        elif item == 'holdout':
            chosen.update(HOLDOUT_CORRUPTIONS)
        elif item == 'all':
            chosen.update(ALL_CORRUPTIONS)
        elif item in CORRUPTION_GROUPS:
            chosen.update(CORRUPTION_GROUPS[item])
        elif item in ALL_CORRUPTIONS:
            chosen.add(item)
        else:
            raise ValueError(f'unknown corruption {item!r}; use benchmark, holdout, all, '
                             f'{", ".join(CORRUPTION_GROUPS)} or one of: {", ".join(ALL_CORRUPTIONS)}')
    return [c for c in ALL_CORRUPTIONS if c in chosen]


def check_severities(severities: Iterable[int]) -> List[int]:
    """Sorted unique severities, each an integer in 1..5."""
    out = set()
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= int(s) <= 5:
            raise ValueError(f'severity {s!r} is outside 1..5')
        out.add(int(s))
    if not out:
        raise ValueError('no severities given')
    return sorted(out)


def corruption_seed(image_key: str, corruption: str, severity: int, base_seed: int = 0) -> int:
    """A 32-bit seed from (image key, corruption, severity, base seed); stable across processes and runs
    (Python's ``hash`` is salted per process, so a digest is used)."""
    text = f'{int(base_seed)}/{image_key}/{corruption}/{int(severity)}'.encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], 'little')


def corrupt_image(img: np.ndarray, corruption: str, severity: int, image_key: str,
                  base_seed: int = 0) -> np.ndarray:
    """Apply one corruption to an HxWx3 uint8 image, deterministically for (image_key, corruption, severity).

    The image is passed in the channel order it was loaded in (BGR in the mm pipeline), as the published
    benchmark did; colour corruptions (brightness, saturate, ...) therefore act on BGR as if it were RGB.
    numpy's global RNG is seeded for the call and restored afterwards, so the caller's random stream is
    untouched.
    """
    from imagecorruptions import corrupt  # the maintained fork `imagecorruptions-imaug`
    if corruption not in ALL_CORRUPTIONS:
        raise ValueError(f'unknown corruption {corruption!r}; known: {", ".join(ALL_CORRUPTIONS)}')
    check_severities([severity])
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'{image_key}: expected an HxWx3 uint8 image, got '
                         f'{getattr(img, "dtype", type(img))} {getattr(img, "shape", "")}')
    if min(img.shape[:2]) < 32:
        raise ValueError(f'{image_key}: image {img.shape[1]}x{img.shape[0]} is smaller than the 32 px the '
                         'corruptions need')
    seed = corruption_seed(image_key, corruption, severity, base_seed)
    kwargs = {'seed': seed} if corruption in _SEED_KWARG else {}
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        out = corrupt(np.ascontiguousarray(img), severity=int(severity), corruption_name=corruption, **kwargs)
    finally:
        np.random.set_state(state)
    return np.ascontiguousarray(out)
