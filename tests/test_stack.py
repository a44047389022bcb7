"""The import's check of the OpenMMLab stack (mmdet_adasap/stack.py), and setup.py's requirements made from it."""
import os.path as osp
from importlib import metadata

import pytest

from conftest import REPO
from mmdet_adasap.stack import REQUIRED, check_stack


def test_the_installed_stack_passes():
    check_stack()


@pytest.mark.parametrize('found, ok', [('2.1.0', True), ('2.0.0rc4', True), ('2.2.0', False), ('1.7.2', False)])
def test_an_mmcv_outside_the_range_is_refused_naming_found_and_needed(found, ok):
    versions = lambda name: found if name == 'mmcv' else metadata.version(name)  # noqa: E731
    if ok:
        check_stack(versions)
        return
    with pytest.raises(ImportError, match=rf'needs .*mmcv>=2\.0\.0,<2\.2\.0.*; mmcv {found} is installed'):
        check_stack(versions)


def test_a_missing_package_is_named():
    def versions(name):
        if name == 'torch-pruning':
            raise metadata.PackageNotFoundError(name)
        return metadata.version(name)
    with pytest.raises(ImportError, match='torch-pruning is not installed'):
        check_stack(versions)


def test_setup_requires_the_same_ranges(monkeypatch):
    """setup.py builds install_requires from REQUIRED (read from this file's source, not imported)."""
    with open(osp.join(REPO, 'setup.py')) as f:
        src = f.read()
    assert "f'{name}>={low},<{high}' for name, (low, high) in STACK.items()" in src
    monkeypatch.chdir(REPO)
    namespace = {}
    exec(src.split('\nsetup(')[0], namespace)
    assert namespace['STACK'] == REQUIRED
