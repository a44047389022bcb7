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


#: the longest test files (module fixtures that train and evaluate, subprocesses), run first: `--dist loadfile`
#: hands files to the two workers in collection order, and a long file collected last left one worker alone
#: for minutes at the end (longest first is the classic fix for that tail; measured with --durations: 14.5 min
#: in collection order, 12.6 with 8 of these first)
LONGEST_FIRST = ('test_experiments/test_compare.py', 'test_configs/test_adasap_configs.py',
                 'test_tools/test_pruned_multiprocess.py', 'test_experiments/test_demo.py',
                 'test_engine/test_hooks/test_adasap_hook.py', 'test_tools/test_wheel_plugin.py',
                 'test_tools/test_resume_exact.py', 'test_tools/test_train_test_tools.py',
                 'test_experiments/test_coco_matrix.py', 'test_robustness/test_coco_distributed.py',
                 'test_tools/test_tool_errors.py', 'test_deploy/test_deploy_report.py', 'test_deploy/test_quantize.py')


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    here = osp.dirname(osp.abspath(__file__))
    items.sort(key=lambda item: rank.get(osp.relpath(str(item.fspath), here), len(rank)))  # stable: keeps the rest


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
