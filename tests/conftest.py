import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: fixtures every test may use (pytest.ini puts tests/ on the path: helpers import as top-level modules)
pytest_plugins = ['pruning_fixtures']

if os.environ.get('PYTEST_XDIST_WORKER'):  # pytest -n N: share the cores out (torch reads this at import), so
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')))
    os.environ.setdefault('OMP_NUM_THREADS', str(_share))  # N workers x all-core thread pools do not thrash


def pytest_configure(config):
    # as the runner does for configs with default_scope='mmdet': build transforms etc. from mmdet's registries
    from mmdet.utils import register_all_modules
    import mmdet_adasap  # noqa: F401
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def tiny_voc(tmp_path_factory):
    """A tiny synthetic VOCdevkit shared by the whole session (read-only for tests)."""
    from mmdet_adasap.datasets import SyntheticVOCSpec, make_synthetic_voc
    spec = SyntheticVOCSpec(trainval={'VOC2007': 12, 'VOC2012': 8}, test={'VOC2007': 6, 'VOC2012': 2},
                            min_side=160, max_side=224, seed=3)
    return make_synthetic_voc(str(tmp_path_factory.mktemp('tiny_voc')), spec, show_progress=False)


def run_tool(*args, cwd=REPO, timeout=900):
    """Run one of tools/*.py as a user would, in a subprocess; returns CompletedProcess (text)."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
