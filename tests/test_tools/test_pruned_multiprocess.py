"""A pruned checkpoint on 2 CPU processes (gloo) and through mmdet's own installed tools: fine-tune, resume,
test and the VOC-C evaluation give what one process gives; the dense config refuses the pruned checkpoint.

These are also the tests of ``tools/dist_train.sh`` and ``tools/dist_test.sh`` without GPUs (through the
upstream fix for mmengine's launcher); a dense model takes the same path."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import mmdet
import pytest
import torch

from conftest import REPO, run_tool
from helpers import state_digest
from mmdet_adasap.pruning import save_pruned_checkpoint
from test_tools.test_train_test_tools import DEMO, tiny_overrides

PRUNED = 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'
DENSE_START = 'docs/results/demo/dense_start.pth'
MMDET_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')


def _run(args, port_offset=0, **env):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(29700 + port_offset + os.getpid() % 200),
               OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', PYTHONPATH=f'{REPO}:{osp.join(REPO, "tests")}', **env)
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _last(pattern, log):
    found = re.findall(pattern, log)
    assert found, log[-3000:]
    return found[-1]


@pytest.fixture(scope='module')
def pruned_ckpt(tmp_path_factory):
    """The comparison's trained dense start pruned one-shot to half its FLOPs: it detects, so the mAP / mPC
    compared below are not all zero."""
    from mmdet_adasap.apis import build_detector, load_config
    from mmdet_adasap.pruning import ChannelPruner
    model, _ = build_detector(load_config(osp.join(REPO, DEMO)), osp.join(REPO, DENSE_START))
    pruner = ChannelPruner(model, (1, 3, 256, 256), target=dict(type='flops', ratio=0.5), round_to=8)
    pruner.prune_one_shot()
    pruned, record = pruner.export_with_config()
    path = str(tmp_path_factory.mktemp('pruned') / 'pruned.pth')
    return save_pruned_checkpoint(path, pruned, record), record


@pytest.fixture(scope='module')
def digest_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'pruned_digest.py'
    path.write_text(f"_base_ = '{osp.join(REPO, PRUNED)}'\n"
                    "custom_imports = dict(imports=['mmdet_adasap', 'rank_digest'], allow_failed_imports=False)\n"
                    "custom_hooks = [dict(type='RankDigestHook')]\n")
    return str(path)


def test_two_processes_fine_tune_resume_test_and_voc_c_as_one(pruned_ckpt, digest_config, tiny_voc, tmp_path):
    ckpt, record = pruned_ckpt
    over = tiny_overrides(tiny_voc, 2)
    seeded = [*over, 'randomness.seed=7']  # without a seed every run draws its own (mmengine), resumes included
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    rc, log = _run(['bash', 'tools/dist_train.sh', digest_config, '2', '--work-dir', full, *seeded,
                    f'load_from={ckpt}'])
    assert rc == 0 and 'Distributed training: True' in log and 'GPU number: 2' in log, log[-3000:]
    ranks = [json.load(open(osp.join(full, f'rank{r}.json'))) for r in (0, 1)]
    assert ranks[0]['params'] == ranks[1]['params'] and ranks[0]['iter'] == ranks[1]['iter'], \
        'both ranks hold the same weights'
    final = torch.load(osp.join(full, 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert final['meta']['adasap_channels'] == record
    assert final['state_dict']['backbone.layer1.0.conv1.weight'].shape[0] == \
        record['backbone.layer1.0.conv1']['pruned']['out_channels']
    assert state_digest(final['state_dict']) == ranks[0]['digest']

    os.makedirs(resumed)
    shutil.copy(osp.join(full, 'epoch_1.pth'), resumed)
    rc, log = _run(['bash', 'tools/dist_train.sh', digest_config, '2', '--work-dir', resumed, '--resume',
                    osp.join(resumed, 'epoch_1.pth'), *seeded], port_offset=1)
    assert rc == 0, log[-3000:]
    again = torch.load(osp.join(resumed, 'epoch_2.pth'), map_location='cpu', weights_only=False)['state_dict']
    assert state_digest(again) == state_digest(final['state_dict']), '--resume continues exactly'

    trained = osp.join(full, 'epoch_2.pth')
    rc, one = _run([sys.executable, 'tools/test.py', PRUNED, trained, '--work-dir', str(tmp_path / 't1'), *over])
    assert rc == 0, one[-3000:]
    rc, two = _run(['bash', 'tools/dist_test.sh', PRUNED, trained, '2', '--work-dir', str(tmp_path / 't2'), *over],
                   port_offset=2)
    assert rc == 0, two[-3000:]
    pattern = r'pascal_voc/mAP: ([0-9.]+)'
    assert _last(pattern, one) == _last(pattern, two) and float(_last(pattern, one)) > 0

    voc_c = ['--corruptions', 'gaussian_noise', '--severities', '2', '--no-plots', '--cfg-options', *over[1:]]
    rc, one = _run([sys.executable, 'tools/test_robustness.py', PRUNED, trained, '--out', str(tmp_path / 'r1'),
                    *voc_c])
    assert rc == 0, one[-3000:]
    rc, two = _run(['bash', 'tools/dist_launch.sh', 'test_robustness.py', '2', PRUNED, trained, '--out',
                    str(tmp_path / 'r2'), *voc_c], port_offset=3)
    assert rc == 0, two[-3000:]
    pattern = r'P ([0-9.]+) +mPC [0-9.]+ +rPC [0-9.]+%'
    assert _last(pattern, one) == _last(pattern, two) and float(_last(pattern, one)) > 0


def test_mmdet_own_tools_take_the_pruned_config_and_refuse_the_dense_one(pruned_ckpt, tiny_voc, tmp_path):
    ckpt, _ = pruned_ckpt
    over = tiny_overrides(tiny_voc, 1)
    rc, log = _run([sys.executable, osp.join(MMDET_TOOLS, 'train.py'), PRUNED, '--work-dir', str(tmp_path / 'tr'),
                    *over, f'load_from={ckpt}', f'model.channels={ckpt}'])
    assert rc == 0 and 'size mismatch' not in log, log[-3000:]
    trained = osp.join(tmp_path, 'tr', 'epoch_1.pth')
    rc, log = _run([sys.executable, osp.join(MMDET_TOOLS, 'test.py'), PRUNED, trained, '--work-dir',
                    str(tmp_path / 'te'), *over, f'model.channels={trained}'])
    assert rc == 0 and 'pascal_voc/mAP' in log and 'size mismatch' not in log, log[-3000:]
    # the dense config refuses the pruned checkpoint (train.py's load_from meets the same ChannelRecordHook check)
    rc, log = _run([sys.executable, osp.join(MMDET_TOOLS, 'test.py'), DEMO, ckpt, '--work-dir', str(tmp_path / 'dense'),
                    *over, f'load_from={ckpt}'])
    assert rc != 0 and 'pascal_voc/mAP' not in log, log[-3000:]
    assert 'is a pruned checkpoint' in log and PRUNED in log and 'size mismatch' not in log, log[-3000:]
