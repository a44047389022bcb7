"""Exact resume through tools/train.py: the demo's dense SGD run with its real augmentation, killed (SIGKILL)
after its first epoch's checkpoint and resumed with ``--resume``, ends bit-identical to the uninterrupted run
(mmengine alone restores no random state; RandomStateHook does). Validation runs inside training, as in the
shipped configs."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import torch

from conftest import REPO
from helpers import state_digest
from test_tools.test_train_test_tools import DEMO, tiny_overrides


def _train(voc, work, *extra):
    args = [sys.executable, 'tools/train.py', DEMO, '--work-dir', work, *extra, *tiny_overrides(voc, 3),
            'randomness.seed=7', 'randomness.deterministic=True']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _digest(work):
    return state_digest(torch.load(osp.join(work, 'epoch_3.pth'), map_location='cpu', weights_only=False)['state_dict'])


def test_a_killed_dense_run_resumes_bit_identical(tiny_voc, tmp_path):
    full, killed = str(tmp_path / 'full'), str(tmp_path / 'killed')
    proc = _train(tiny_voc, full)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]

    proc = _train(tiny_voc, killed)
    deadline = time.time() + 600
    while not osp.isfile(osp.join(killed, 'epoch_1.pth')) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert osp.isfile(osp.join(killed, 'epoch_1.pth')) and not osp.isfile(osp.join(killed, 'epoch_2.pth')), \
        'killed between the first and the second epoch checkpoint'

    proc = _train(tiny_voc, killed, '--resume')
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    assert _digest(killed) == _digest(full)
