"""tools/train.py and tools/test.py as a user runs them: train, resume, evaluate, bad input."""
import os
import os.path as osp
import subprocess
import sys

from conftest import REPO, run_tool
from helpers import tool_exit_message

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


def test_train_load_from_and_test_through_the_tools(tiny_voc, tmp_path):
    """Train, start a new run from the trained weights (``load_from``), test with ``--out``. ``--resume`` through
    the tool is tests/test_tools/test_resume_exact.py (a killed run, resumed bit-identical)."""
    work = str(tmp_path / 'first')
    first = run_tool('tools/train.py', DEMO, '--work-dir', work, *tiny_overrides(tiny_voc, 1))
    assert first.returncode == 0, first.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))

    second = run_tool('tools/train.py', DEMO, '--work-dir', str(tmp_path / 'second'), *tiny_overrides(tiny_voc, 1),
                      f'load_from={work}/epoch_1.pth')
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert 'Load checkpoint from' in log and 'resumed' not in log.lower()
    trained = osp.join(tmp_path, 'second', 'epoch_1.pth')
    assert osp.isfile(trained)

    tested = run_tool('tools/test.py', DEMO, trained, '--work-dir', str(tmp_path / 'test'),
                      '--out', str(tmp_path / 'preds.pkl'), *tiny_overrides(tiny_voc, 1))
    log = tested.stdout + tested.stderr
    assert tested.returncode == 0, log[-3000:]
    assert 'pascal_voc/mAP' in log
    assert osp.getsize(tmp_path / 'preds.pkl') > 0


def test_unknown_config_path_is_a_clear_error(tmp_path):
    message = tool_exit_message('train', 'configs/does/not_exist.py', '--work-dir', str(tmp_path))
    assert "config file 'configs/does/not_exist.py' does not exist" in message
    message = tool_exit_message('test', DEMO, str(tmp_path / 'missing.pth'))
    assert 'missing.pth' in message and 'does not exist' in message


def test_make_synthetic_voc_tool_refuses_to_overwrite(tmp_path):
    args = [str(tmp_path), '--trainval-2007', '2', '--test-2007', '1', '--trainval-2012', '2', '--test-2012', '1',
            '--min-side', '64', '--max-side', '80']
    assert tool_exit_message('make_synthetic_voc', *args) == ''
    message = tool_exit_message('make_synthetic_voc', *args)
    assert 'already exists' in message and 'VOCdevkit' in message
