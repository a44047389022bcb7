"""End to end: tools/test_robustness.py on the tiny synthetic set with the demo detector.

The weights are a fixed random initialisation, so the test checks plumbing, not accuracy. At IoU 0.5 such a
model scores exactly 0 everywhere, which would hide mix-ups; the evaluator is run at IoU 0.1 so that the
numbers differ between sets (the metric code path is the same for any single threshold).
"""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import run_tool

from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.voc_c import render_voc_c

CONFIG = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
CORRUPTIONS, SEVERITIES = ['gaussian_noise', 'fog'], [1, 5]


def _options(tiny_voc):
    return {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False, 'test_evaluator.iou_thrs': 0.1, 'log_level': 'INFO'}


def _cli_options(tiny_voc):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in _options(tiny_voc).items()]


def _checkpoint(path, seed):
    from mmengine.config import Config

    from mmdet.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='module')
def evaluated(tiny_voc, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('robust_eval')
    ckpt = _checkpoint(str(tmp / 'random.pth'), seed=0)
    cache = str(tmp / 'voc_c')
    render_voc_c(tiny_voc, cache, ['fog'], SEVERITIES, show_progress=False)  # fog cached, gaussian_noise on the fly
    out = str(tmp / 'out')
    cmd = ['tools/test_robustness.py', CONFIG, ckpt, '--out', out, '--corruptions', *CORRUPTIONS,
           '--severities', *map(str, SEVERITIES), '--cache', cache, '--label', 'random-init', *_cli_options(tiny_voc)]
    proc = run_tool(*cmd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(osp.join(out, 'robustness.json')) as f:
        result = json.load(f)
    return dict(tiny_voc=tiny_voc, tmp=tmp, ckpt=ckpt, cache=cache, out=out, cmd=cmd, result=result)


def _reference_map(tiny_voc, ckpt, work_dir, corruption=None, severity=None):
    """mmdet's stock VOCMetric in a stock TestLoop (corrupted on the fly): the independent reference."""
    from mmengine.runner import Runner

    from mmdet_adasap.apis import load_config
    cfg = load_config(CONFIG, _options(tiny_voc), work_dir)
    cfg.load_from = ckpt
    if corruption:
        pipeline = cfg.test_dataloader.dataset.pipeline
        pipeline[0] = dict(type='LoadCorruptedImageFromFile', corruption=corruption, severity=severity)
    return Runner.from_cfg(cfg).test()['pascal_voc/mAP']


def test_outputs_exist_and_equal_the_metric(evaluated, tiny_voc):
    res, out = evaluated['result'], evaluated['out']
    for name in ('robustness.md', 'severity_curves.png', 'corruption_bars.png'):
        with open(osp.join(out, name), 'rb') as f:
            head = f.read(8)
        assert head == b'\x89PNG\r\n\x1a\n' if name.endswith('.png') else head.startswith(b'# Robust')
    assert res['protocol']['metric'] == 'AP10' and res['dataset']['classes'][0] == 'disc'
    assert res['dataset']['num_images'] == 6
    assert res['corrupted']['fog']['5']['source'] == 'cache:png'
    assert res['corrupted']['gaussian_noise']['1']['source'] == 'on_the_fly'
    # the stored mAPs are what mmdet's VOCMetric says for the same sets (fog: cache vs on-the-fly reference)
    work = str(evaluated['tmp'] / 'ref')
    assert res['clean']['mAP'] == pytest.approx(_reference_map(tiny_voc, evaluated['ckpt'], work), abs=1e-9)
    for c, s in (('fog', 5), ('gaussian_noise', 1)):
        ref = _reference_map(tiny_voc, evaluated['ckpt'], work, c, s)
        assert res['corrupted'][c][str(s)]['mAP'] == pytest.approx(ref, abs=1e-9)
    maps = [res['corrupted'][c][str(s)]['mAP'] for c in CORRUPTIONS for s in SEVERITIES]
    assert len(set(maps + [res['clean']['mAP']])) > 2  # the sets really differ
    # summary recomputed independently from the per-set values
    s = res['summary']
    assert s['P'] == res['clean']['mAP']
    assert s['mPC'] == pytest.approx(np.mean(maps))
    assert s['rPC'] == pytest.approx(np.mean(maps) / res['clean']['mAP'])
    assert s['per_severity']['5'] == pytest.approx(np.mean([res['corrupted'][c]['5']['mAP'] for c in CORRUPTIONS]))
    for set_ in [res['clean']] + [res['corrupted'][c][str(v)] for c in CORRUPTIONS for v in SEVERITIES]:
        aps = [ap for ap in set_['per_class'].values() if ap is not None]
        assert np.mean(aps) == pytest.approx(set_['mAP'], abs=1e-6)
    # the markdown table shows the same numbers (x100, 2 decimals)
    with open(osp.join(out, 'robustness.md')) as f:
        md = f.read()
    for c in CORRUPTIONS:
        row = re.search(rf'^\| {c} \| \w+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$', md, re.M)
        assert row, md
        expected = [res['corrupted'][c]['1']['mAP'], res['corrupted'][c]['5']['mAP'], s['per_corruption'][c]['mean']]
        assert [float(v) for v in row.groups()] == pytest.approx([100 * v for v in expected], abs=0.006)
    head = re.search(r'^\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|', md, re.M)
    assert [float(v) for v in head.groups()] == pytest.approx([100 * s['P'], 100 * s['mPC'], 100 * s['rPC']],
                                                              abs=0.006)


def test_resume_skips_finished_sets_and_refuses_other_weights(evaluated, tiny_voc):
    out = evaluated['out']
    os.remove(osp.join(out, 'sets', 'fog-s5.json'))
    proc = run_tool(*evaluated['cmd'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert len(re.findall(r'\] (clean|gaussian_noise/[15]|fog/1): done before', log)) == 4
    assert re.search(r'\[5/5\] fog/5: mAP [\d.]+ \(cache:png', log)
    with open(osp.join(out, 'robustness.json')) as f:
        again = json.load(f)
    assert again['summary'] == evaluated['result']['summary']
    other = _checkpoint(str(evaluated['tmp'] / 'other.pth'), seed=1)
    with pytest.raises(ValueError, match='holds results of other weights'):
        evaluate_robustness(CONFIG, other, out, CORRUPTIONS, SEVERITIES, cfg_options=_options(tiny_voc),
                            work_dir=str(evaluated['tmp'] / 'other_logs'))


def test_bad_input_fails_before_evaluating(evaluated, tmp_path):
    base = ['tools/test_robustness.py', CONFIG, evaluated['ckpt'], '--out', str(tmp_path / 'o')]
    proc = run_tool(*base, '--corruptions', 'fog', 'haze')
    assert proc.returncode != 0 and "unknown corruption 'haze'" in proc.stderr
    with pytest.raises(ValueError, match='severity 9 is outside 1..5'):
        evaluate_robustness(CONFIG, evaluated['ckpt'], str(tmp_path / 'o'), ['fog'], [1, 9])
    assert not osp.exists(tmp_path / 'o')
    with pytest.raises(FileNotFoundError, match='not a VOC-C cache'):
        evaluate_robustness(CONFIG, evaluated['ckpt'], str(tmp_path / 'o'), ['fog'], [1], cache_root=str(tmp_path),
                            cfg_options=_options(evaluated['tiny_voc']))
