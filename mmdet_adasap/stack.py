"""The OpenMMLab stack this package works with, checked before anything of it is imported.

A wheel installed into an existing environment meets whatever mmengine / mmcv / mmdet is there. mmdet checks only
mmcv, with its own message, and an mmengine outside the range fails later, deep in a config or a hook. So the
package reads the installed versions from the distributions' metadata (nothing is imported) and refuses a version
outside its range in one message naming what was found and what is needed. ``setup.py`` reads ``REQUIRED`` from
this file (it cannot import the package), so the wheel's requirements and this check are one table.
"""
import re
from importlib import metadata

#: distribution -> (lowest version, first version not supported)
REQUIRED = {
    'mmengine': ('0.10.7', '0.11'),
    'mmcv': ('2.0.0', '2.2.0'),  # mmdet 3.3.0 refuses mmcv >= 2.2.0
    'mmdet': ('3.3.0', '3.4'),
    'torch-pruning': ('1.6.1', '1.7'),
}


def _release(version: str) -> tuple:
    """The numeric release of a version string: '2.0.0rc4' -> (2, 0, 0), '0.10.7' -> (0, 10, 7)."""
    return tuple(int(p) for p in re.findall(r'\d+', version.split('+')[0].split('rc')[0].split('a')[0]
                                            .split('b')[0])[:3])


def requirement(name: str) -> str:
    low, high = REQUIRED[name]
    return f'{name}>={low},<{high}'


def check_stack(version=metadata.version) -> None:
    """Raise ImportError naming every package of ``REQUIRED`` that is missing or outside its range."""
    wrong = []
    for name, (low, high) in REQUIRED.items():
        try:
            found = version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f'{name} is not installed')
            continue
        if not _release(low) <= _release(found) < _release(high):
            wrong.append(f'{name} {found} is installed')
    if wrong:
        raise ImportError(f'mmdet-adasap needs {", ".join(requirement(n) for n in REQUIRED)}; '
                          f'{"; ".join(wrong)}. Install versions in these ranges (the verified pins: '
                          'requirements/constraints.txt of the repository, docs/install.md)')
