"""Where the configs and tools that ship with the package are, so that a user's config in any folder can build
on them.

mmengine resolves a relative ``_base_`` against the config's own folder, and its ``package::path`` form only
accepts the OpenMMLab packages listed in ``mmengine.config.utils.MODULE2PACKAGE`` (and then stamps the package
name as the registry scope of every base dict, a scope this package does not have). What every mmengine tool
does accept is an absolute path, and it evaluates the ``_base_`` expression with ``eval``. So a user config
writes::

    _base_ = __import__('mmdet_adasap').config_path('demo/ssd-r18mini_synthvoc_dense.py')

and works under mmdet's own ``tools/train.py``, this package's console scripts and ``Config.fromfile``
alike (docs/plugin.md: the choice and the alternatives that do not work).

The files: an installed wheel carries them in ``mmdet_adasap/.mim/configs`` and ``mmdet_adasap/.mim/tools``
(copied in by setup.py, the layout MMDetection and ``mim`` use); an editable install links the clone's
``configs/`` and ``tools/`` there; a clone on ``PYTHONPATH`` without any install is read in place.
The module itself imports nothing heavy; reaching it through ``mmdet_adasap`` imports the package (torch, the
registrations), which the config's ``custom_imports`` does next anyway.
"""
import difflib
import glob
import os.path as osp
from typing import List, Union

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def shipped_dir(kind: str) -> str:
    """The folder of the shipped ``'configs'`` or ``'tools'``: the package's ``.mim/<kind>`` when installed,
    the clone's ``<kind>/`` otherwise."""
    if kind not in ('configs', 'tools'):
        raise ValueError(f"shipped_dir takes 'configs' or 'tools', got {kind!r}")
    for folder in (osp.join(PACKAGE_DIR, '.mim', kind), osp.join(osp.dirname(PACKAGE_DIR), kind)):
        if osp.isdir(folder):
            return folder
    raise FileNotFoundError(
        f'mmdet_adasap has no {kind}/ beside it (looked in {PACKAGE_DIR}/.mim/{kind} and the clone): install '
        f'a wheel built by setup.py (`pip wheel --no-deps .` in a clone), or in a clone `pip install -e .` (which '
        f'links .mim/{kind})')


def shipped_configs() -> List[str]:
    """Every shipped config, as the relative names :func:`config_path` takes (``'demo/...py'``)."""
    root = shipped_dir('configs')
    return sorted(osp.relpath(p, root) for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True))


def config_path(*names: str) -> Union[str, List[str]]:
    """Absolute path of the shipped config ``name`` (relative to ``configs/``, e.g.
    ``'_base_/adasap/adasap.py'``); several names give a list, ready for ``_base_ = [...]``."""
    if not names:
        raise TypeError("config_path needs a config name, e.g. config_path('demo/ssd-r18mini_synthvoc_dense.py')")
    root = shipped_dir('configs')
    paths = []
    for name in names:
        rel = name.split('::', 1)[-1].lstrip('/')
        rel = rel[len('configs/'):] if rel.startswith('configs/') else rel
        path = osp.join(root, rel)
        if not osp.isfile(path):
            near = difflib.get_close_matches(rel, shipped_configs(), n=3, cutoff=0.5)
            hint = f'; did you mean {", ".join(near)}?' if near else ' (mmdet_adasap.shipped_configs() lists them)'
            raise FileNotFoundError(f'mmdet_adasap ships no config {name!r} under {root}{hint}')
        paths.append(path)
    return paths[0] if len(paths) == 1 else paths


def tool_path(name: str) -> str:
    """Absolute path of the shipped tool ``tools/<name>.py``."""
    path = osp.join(shipped_dir('tools'), f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmdet_adasap ships no tool {name}.py in {osp.dirname(path)}: reinstall the '
                                f'package from a wheel setup.py built, or in a clone `pip install -e .`')
    return path
