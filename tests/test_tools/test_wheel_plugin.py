"""The package used from a user's own project (docs/plugin.md): the wheel carries the configs and tools, a config
in an empty folder builds on a shipped one (``_base_ = __import__('mmdet_adasap').config_path(...)``), and
mmdet's own installed ``tools/train.py`` and this package's console script run it.

The wheel is built once per module from a copy of the checkout's files (tracked and new, not ignored ones), and
installed into a fresh venv outside the checkout. That venv is made from the project venv's interpreter with
``--system-site-packages``, which gives the *base* Python's packages, not the project venv's: a ``.pth`` line
adds the project venv's site-packages (mmengine, mmdet, torch) behind the venv's own. A plain path line does not
run the ``.pth`` files in that folder, so the project's editable install of mmdet_adasap stays out and the
wheel's copy is the one imported (checked).
"""
import ast
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import REPO

import mmdet
import mmdet_adasap
from mmdet_adasap.apis import entry
from mmdet_adasap.datasets import SyntheticVOCSpec, make_synthetic_voc

BUILD_INPUTS = ['setup.py', 'MANIFEST.in', 'README.md', 'requirements', 'mmdet_adasap', 'configs', 'tools']
DENSE_START = osp.join(REPO, 'docs/results/demo/dense_start.pth')  # the demo detector, trained
MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
USER_ADASAP = """\
_base_ = __import__('mmdet_adasap').config_path('adasap/ssd-r18mini_synthvoc_adasap_flops50.py')
data_root = {data_root!r}
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=2, **loader, dataset=dict(
    datasets=[dict(d, data_root=data_root) for d in _base_.train_dataloader.dataset.datasets]))
val_dataloader = dict(batch_size=2, **loader, dataset=dict(data_root=data_root))
load_from = {dense!r}  # a trained dense checkpoint of the detector
"""
USER_PRUNED = """\
_base_ = __import__('mmdet_adasap').config_path('pruned/ssd-r18mini_synthvoc_pruned.py')
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root={data_root!r}))
"""
#: the AdaSAP recipe's three phases in 3 epochs of 3 iterations, one pruning step
SHORT_ADASAP = ['--cfg-options', 'train_cfg.max_epochs=3', 'train_cfg.val_interval=3', 'param_scheduler=[]',
                'default_hooks.adasap.warmup.end=1', 'default_hooks.adasap.pruning.end=2',
                'default_hooks.adasap.pruning.schedule.steps=1', 'default_hooks.logger.interval=1']


def run(cmd, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f'{cmd} failed:\n{(done.stdout + done.stderr)[-3000:]}'
    return done.stdout + done.stderr


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the checkout (so the build leaves nothing in the clone)."""
    tmp = tmp_path_factory.mktemp('wheel')
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '--',
                             *BUILD_INPUTS], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split('\0')):
        if osp.isfile(osp.join(REPO, rel)):
            os.makedirs(osp.dirname(tmp / 'src' / rel), exist_ok=True)
            shutil.copyfile(osp.join(REPO, rel), tmp / 'src' / rel)
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--disable-pip-version-check',
         '-w', str(tmp / 'dist'), str(tmp / 'src')], cwd=str(tmp))
    return glob.glob(str(tmp / 'dist' / 'mmdet_adasap-*.whl'))[0]


@pytest.fixture(scope='module')
def user_venv(wheel, tmp_path_factory):
    """A fresh venv outside the checkout with the wheel installed; returns its bin/ folder."""
    venv = tmp_path_factory.mktemp('user_venv') / 'venv'
    run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip', str(venv)], cwd=str(venv.parent))
    python = str(venv / 'bin' / 'python')
    site = subprocess.run([python, '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(osp.join(site, 'project_venv.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed',
         '--disable-pip-version-check', wheel], cwd=str(venv.parent))
    return str(venv / 'bin')


def test_the_wheel_carries_configs_tools_and_console_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert 'mmdet_adasap/.mim/configs/_base_/adasap/adasap.py' in names
    assert 'mmdet_adasap/.mim/configs/demo/ssd-r18mini_synthvoc_dense.py' in names
    assert 'mmdet_adasap/.mim/tools/train.py' in names
    scripts = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    assert 'mmdet-adasap-train = mmdet_adasap.apis.entry:train' in scripts


def test_console_scripts_name_shipped_tools():
    """setup.py's console scripts: each names a function of mmdet_adasap.apis.entry and a tool that exists."""
    tree = ast.parse(open(osp.join(REPO, 'setup.py')).read())
    scripts = next(ast.literal_eval(n.value) for n in tree.body
                   if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'CONSOLE_SCRIPTS')
    for name, func in scripts.items():
        assert callable(getattr(entry, func)), name
        assert osp.isfile(osp.join(REPO, 'tools', f'{func}.py')), name


def test_config_path_names_a_shipped_config_or_the_nearest_ones():
    assert mmdet_adasap.config_path('_base_/adasap/adasap.py').endswith(osp.join('_base_', 'adasap', 'adasap.py'))
    assert len(mmdet_adasap.config_path('_base_/adasap/adasap.py', 'demo/ssd-r18mini_synthvoc_dense.py')) == 2
    with pytest.raises(FileNotFoundError, match='did you mean .*_base_/adasap/adasap.py'):
        mmdet_adasap.config_path('_base_/adasap/adasapp.py')


def test_a_user_config_prunes_with_mmdets_train_and_the_pruned_model_tests_with_ours(user_venv, tmp_path):
    python = osp.join(user_venv, 'python')
    where = run([python, '-c', 'from importlib.util import find_spec as f; '  # found, not imported: cheap
                 'print(f("mmengine").origin, f("mmdet").origin, f("mmdet_adasap").origin)'], cwd=str(tmp_path))
    assert where.split()[-1].startswith(osp.dirname(user_venv)), where  # the wheel's copy, not the editable one
    voc = make_synthetic_voc(str(tmp_path / 'voc'), SyntheticVOCSpec(
        trainval={'VOC2007': 4, 'VOC2012': 2}, test={'VOC2007': 2, 'VOC2012': 1}, min_side=96, max_side=128,
        seed=3), show_progress=False)
    project = tmp_path / 'my_project'
    project.mkdir()
    # the shipped AdaSAP recipe on the trained demo detector, by mmdet's tool; the exported model by ours
    (project / 'my_adasap.py').write_text(USER_ADASAP.format(data_root=voc.rstrip('/') + '/', dense=DENSE_START))
    (project / 'my_pruned.py').write_text(USER_PRUNED.format(data_root=voc.rstrip('/') + '/'))
    trained = run([python, MMDET_TRAIN, 'my_adasap.py', '--work-dir', 'work_adasap', *SHORT_ADASAP],
                  cwd=str(project))
    assert 'AdaSAPHook: phase 3/3' in trained and osp.isfile(project / 'work_adasap' / 'pruned.pth'), trained[-3000:]
    tested = run([osp.join(user_venv, 'mmdet-adasap-test'), 'my_pruned.py', 'work_adasap/pruned.pth',
                  '--work-dir', 'work_pruned_test'], cwd=str(project))
    assert 'pascal_voc/mAP' in tested
