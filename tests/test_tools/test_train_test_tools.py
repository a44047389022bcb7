"""tools/train.py and tools/test.py as a user runs them: train, resume, evaluate, bad input."""
import glob
import os
import os.path as osp
import subprocess
import sys

from conftest import REPO, run_tool

DEMO = 'configs/demo/ssd-r18mini_synthvoc_dense.py'


def tiny_overrides(voc, epochs):
    root = voc.rstrip('/') + '/'
    return ['--cfg-options', f'train_dataloader.dataset.datasets.0.data_root={root}',
            f'train_dataloader.dataset.datasets.1.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', 'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
            'param_scheduler=[]']


def test_train_resume_and_test_through_the_tools(tiny_voc, tmp_path):
    work = str(tmp_path / 'run')
    first = run_tool('tools/train.py', DEMO, '--work-dir', work, *tiny_overrides(tiny_voc, 1))
    assert first.returncode == 0, first.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))

    resumed = run_tool('tools/train.py', DEMO, '--work-dir', work, '--resume', *tiny_overrides(tiny_voc, 2))
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'resumed epoch: 1' in log.lower() or 'resumed epoch 1' in log.lower(), log[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))

    tested = run_tool('tools/test.py', DEMO, osp.join(work, 'epoch_2.pth'), '--work-dir', str(tmp_path / 'test'),
                      '--out', str(tmp_path / 'preds.pkl'), *tiny_overrides(tiny_voc, 2))
    log = tested.stdout + tested.stderr
    assert tested.returncode == 0, log[-3000:]
    assert 'pascal_voc/mAP' in log
    assert osp.getsize(tmp_path / 'preds.pkl') > 0


def test_load_from_starts_a_new_run_from_trained_weights(tiny_voc, tmp_path):
    work = str(tmp_path / 'first')
    assert run_tool('tools/train.py', DEMO, '--work-dir', work, *tiny_overrides(tiny_voc, 1)).returncode == 0
    second = run_tool('tools/train.py', DEMO, '--work-dir', str(tmp_path / 'second'), *tiny_overrides(tiny_voc, 1),
                      f'load_from={work}/epoch_1.pth')
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert 'Load checkpoint from' in log
    assert glob.glob(str(tmp_path / 'second' / 'epoch_1.pth'))


def test_unknown_config_path_is_a_clear_error(tmp_path):
    out = run_tool('tools/train.py', 'configs/does/not_exist.py', '--work-dir', str(tmp_path))
    assert out.returncode != 0
    assert "config file 'configs/does/not_exist.py' does not exist" in out.stderr
    out = run_tool('tools/test.py', DEMO, str(tmp_path / 'missing.pth'))
    assert out.returncode != 0 and 'missing.pth' in out.stderr and 'does not exist' in out.stderr


def test_make_synthetic_voc_tool_refuses_to_overwrite(tmp_path):
    args = ['tools/make_synthetic_voc.py', str(tmp_path), '--trainval-2007', '2', '--test-2007', '1',
            '--trainval-2012', '2', '--test-2012', '1', '--min-side', '64', '--max-side', '80']
    assert run_tool(*args).returncode == 0
    again = run_tool(*args)
    assert again.returncode != 0 and 'already exists' in again.stderr and 'VOCdevkit' in again.stderr


def test_dist_train_and_test_run_two_cpu_processes(tiny_voc, tmp_path):
    """dist_train.sh / dist_test.sh without GPUs (gloo), through the upstream fix for mmengine's launcher."""
    env_args = dict(PYTHON=sys.executable, PORT=str(29500 + os.getpid() % 1000))
    work = str(tmp_path / 'dist')
    train = subprocess.run(['bash', 'tools/dist_train.sh', DEMO, '2', '--work-dir', work,
                            *tiny_overrides(tiny_voc, 1)], cwd=REPO, env=dict(os.environ, **env_args),
                           capture_output=True, text=True, timeout=600)
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, log[-2000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    test = subprocess.run(['bash', 'tools/dist_test.sh', DEMO, osp.join(work, 'epoch_1.pth'), '2', '--work-dir',
                           str(tmp_path / 'dist_test'), *tiny_overrides(tiny_voc, 1)], cwd=REPO,
                          env=dict(os.environ, **env_args), capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, (test.stdout + test.stderr)[-3000:]
    assert 'pascal_voc/mAP' in test.stdout + test.stderr


def test_dist_train_with_the_sam_wrapper_takes_two_passes_on_two_cpu_processes(tiny_voc, tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(29600 + os.getpid() % 1000))
    train = subprocess.run(['bash', 'tools/dist_train.sh', 'configs/demo/ssd-r18mini_synthvoc_sam.py', '2',
                            '--work-dir', str(tmp_path), *tiny_overrides(tiny_voc, 1)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log and 'loss_perturbed' in log and 'eps_norm' in log, log[-2000:]
