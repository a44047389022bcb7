"""Robustness with any mmdet metric: the tiny synthetic set converted to COCO json, the demo detector's test
dataloader switched to ``CocoDataset`` + ``CocoMetric`` by a derived config (as a user with COCO data has it).

Independent checks: P equals the clean ``coco/bbox_mAP`` of mmengine's plain ``Runner.test()`` on the same
config, mPC the mean of the corrupted sets' values read back from the per-set records; and mmdet's own
shipped ``tools/analysis_tools/test_robustness.py`` run on the same config, checkpoint and corruptions.

The two corruptions have no randomness (defocus_blur, contrast): mmdet's ``Corrupt`` transform is unseeded
(numpy's global RNG), ours seeds per image, so only deterministic corruptions give both the same pixels.
"""
import importlib.util
import json
import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
from conftest import REPO, run_tool

from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.loop import _robustness_evaluator_cfg, _same_fingerprint, default_metric_key
from mmdet_adasap.robustness.result import check_comparable
from mmdet_adasap.robustness.voc_coco import voc_to_coco

BASE = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
CKPT = osp.join(REPO, 'docs/results/demo/dense_start.pth')
CORRUPTIONS, SEVERITIES = ['defocus_blur', 'contrast'], [3]  # deterministic: see the module docstring
MMDET_TOOLS = osp.join(osp.dirname(importlib.util.find_spec('mmdet').origin), '.mim')

COCO_CONFIG = """_base_ = {base!r}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CocoDataset', data_root={root!r}, ann_file={ann!r}, data_prefix=dict(img=''),
                 metainfo=dict(classes={classes!r}), test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(_delete_=True, type='CocoMetric', ann_file={ann!r}, metric='bbox', classwise=True)
"""
# what mmdet's old-style test_robustness.py needs on top: it sets `model.backbone.init_cfg.type = None`
# unconditionally (the demo config has init_cfg=None) and picks COCO-style aggregation by `dataset_type`
MMDET_CONFIG = """_base_ = './ssd_coco.py'
dataset_type = 'CocoDataset'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Kaiming')))
"""


@pytest.fixture(scope='module')
def coco(tiny_voc, tmp_path_factory):
    from mmdet_adasap.datasets import SYNTHETIC_VOC_CLASSES
    tmp = tmp_path_factory.mktemp('robust_coco')
    ann = str(tmp / 'coco_test2007.json')
    proc = run_tool('tools/voc_to_coco.py', tiny_voc, ann, '--split', 'test', '--years', '2007')
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = tmp / 'ssd_coco.py'
    config.write_text(COCO_CONFIG.format(base=BASE, root=tiny_voc + '/', ann=ann,
                                         classes=tuple(SYNTHETIC_VOC_CLASSES)))
    out = str(tmp / 'out')
    result = evaluate_robustness(str(config), CKPT, out, CORRUPTIONS, SEVERITIES, plots=False,
                                 label='dense-coco', work_dir=str(tmp / 'logs'))
    return dict(tmp=tmp, ann=ann, config=str(config), out=out, result=result, tiny_voc=tiny_voc)


def _plain_test(config, work_dir):
    """mmengine's own Runner.test() with the plain TestLoop on the same config: the reference."""
    from mmengine.runner import Runner

    from mmdet_adasap.apis import load_config
    cfg = load_config(config, None, work_dir)
    cfg.load_from = CKPT
    return Runner.from_cfg(cfg).test()


def test_converter_gives_the_boxes_voc_dataset_loads(coco):
    from mmdet.datasets import CocoDataset

    from mmdet_adasap.datasets import SYNTHETIC_VOC_CLASSES, SyntheticVOCDataset
    voc = SyntheticVOCDataset(data_root=coco['tiny_voc'] + '/', ann_file='VOC2007/ImageSets/Main/test.txt',
                              data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline=[])
    cc = CocoDataset(data_root=coco['tiny_voc'] + '/', ann_file=coco['ann'], data_prefix=dict(img=''),
                     metainfo=dict(classes=SYNTHETIC_VOC_CLASSES), test_mode=True, pipeline=[])
    assert len(voc) == len(cc) == 6
    for i in range(len(voc)):
        a, b = voc.get_data_info(i), cc.get_data_info(i)
        assert osp.realpath(a['img_path']) == osp.realpath(b['img_path'])
        assert (a['width'], a['height']) == (b['width'], b['height'])
        key = lambda inst: (inst['bbox_label'], inst['ignore_flag'], *inst['bbox'])  # noqa: E731
        assert sorted(map(key, a['instances'])) == sorted(map(key, b['instances']))
    js = voc_to_coco(coco['tiny_voc'], None, 'test', ['VOC2007'], difficult='keep')
    assert all(a['iscrowd'] == 0 and a['area'] == a['bbox'][2] * a['bbox'][3] for a in js['annotations'])
    assert [c['id'] for c in js['categories']] == [1, 2, 3, 4, 5, 6]


def test_coco_p_mpc_rpc_against_plain_test_and_records(coco):
    res, out = coco['result'], coco['out']
    key = 'coco/bbox_mAP'
    assert res['protocol']['metric_key'] == key == res['summary']['metric_key']
    assert res['protocol']['metric_type'] == 'CocoMetric'
    ref = _plain_test(coco['config'], str(coco['tmp'] / 'ref'))
    assert ref[key] > 0.05  # the trained demo detector really finds objects
    s = res['summary']
    assert s['P'] == ref[key]
    # every scalar key of CocoMetric kept per set; mPC = mean of the corrupted sets' values from the records
    values = []
    for c in CORRUPTIONS:
        with open(osp.join(out, 'sets', f'{c}-s3.json')) as f:
            rec = json.load(f)
        assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s'} <= set(rec['metrics'])
        assert rec['mAP'] == rec['metrics'][key] == res['corrupted'][c]['3']['mAP']
        assert rec['fingerprint']['metric_type'] == 'CocoMetric' and rec['fingerprint']['metric_key'] == key
        values.append(rec['metrics'][key])
    assert s['mPC'] == pytest.approx(np.mean(values), abs=1e-12)
    assert s['rPC'] == pytest.approx(np.mean(values) / ref[key], abs=1e-12)
    assert len(set(values + [s['P']])) > 1  # the corruptions change the detections
    # per class: CocoMetric(classwise=True)'s <class>_precision
    assert set(res['clean']['per_class']) == set(res['dataset']['classes'])
    with open(osp.join(out, 'robustness.md')) as f:
        md = f.read()
    assert f'| P (clean, {key}) | mPC |' in md and '## Per class' in md and '| disc |' in md


def test_metric_key_choice_bad_key_and_resume_with_another_key(coco):
    # another key of the same run: refused in the same directory (the key is in the set fingerprint) ...
    with pytest.raises(ValueError, match='holds results of other weights, data or settings'):
        evaluate_robustness(coco['config'], CKPT, coco['out'], CORRUPTIONS, SEVERITIES, plots=False,
                            metric_key='coco/bbox_mAP_50', work_dir=str(coco['tmp'] / 'logs50'))
    # ... and a key the metric does not return: refused on the clean set, naming the keys it returned
    # (from Python: a CLI run costs ~15 s here; tools/test_robustness.py passes --metric-key straight through)
    out = str(coco['tmp'] / 'bad')
    with pytest.raises(ValueError, match=r"metric key 'coco/bbox_AP50' is not among the keys CocoMetric returned: "
                                         r".*coco/bbox_mAP_50, coco/bbox_mAP_75"):
        evaluate_robustness(coco['config'], CKPT, out, ['fog'], [3], plots=False, metric_key='coco/bbox_AP50')
    assert not osp.exists(osp.join(out, 'sets', 'fog-s3.json')) and not osp.exists(osp.join(out, 'sets', 'clean.json'))


def test_voc_default_unchanged_and_evaluator_checks():
    voc = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
    assert _robustness_evaluator_cfg(voc) == dict(voc, type='VOCPerClassMetric')
    assert default_metric_key(voc) == 'pascal_voc/mAP'
    assert default_metric_key(dict(type='CocoMetric')) == 'coco/bbox_mAP'
    assert default_metric_key(dict(type='CocoMetric', metric=['segm'])) == 'coco/segm_mAP'
    assert default_metric_key(dict(type='SomeMetric')) is None
    coco = dict(type='CocoMetric', ann_file='a.json')
    assert _robustness_evaluator_cfg([coco]) == coco
    with pytest.raises(ValueError, match=r"one primary key.*\['VOCMetric', 'CocoMetric'\]"):
        _robustness_evaluator_cfg([voc, coco])
    # a VOC set record written before the metric entered the fingerprint is still resumed
    new = dict(weights_sha256='w', eval_mode='11points', iou_thr=0.5, metric_type='VOCMetric',
               metric_key='pascal_voc/mAP', seed=0)
    old = {k: v for k, v in new.items() if k not in ('metric_type', 'metric_key')}
    assert _same_fingerprint(old, new) and not _same_fingerprint(old, dict(new, metric_key='pascal_voc/AP50'))
    # results on different keys are not put side by side; a result without the key reads as VOC's
    a = dict(dataset=dict(classes=['x']), protocol=dict(eval_mode=None, iou_thr=None, metric_key='coco/bbox_mAP'))
    b = dict(dataset=dict(classes=['x']), protocol=dict(eval_mode=None, iou_thr=None))
    with pytest.raises(ValueError, match='metric_key'):
        check_comparable([a, b], ['a.json', 'b.json'])
    check_comparable([b, dict(b, protocol=dict(b['protocol'], metric_key='pascal_voc/mAP'))], ['b', 'c'])


def _mmdet_robustness_eval():
    spec = importlib.util.spec_from_file_location(
        'mmdet_robustness_eval', osp.join(MMDET_TOOLS, 'tools', 'analysis_tools', 'robustness_eval.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not osp.isfile(osp.join(MMDET_TOOLS, 'tools', 'analysis_tools', 'test_robustness.py')),
                    reason="mmdet's shipped tools/analysis_tools are not installed")
def test_equals_mmdet_shipped_test_robustness(coco):
    """mmdet's own benchmark script on the same config, checkpoint, corruptions and severity (plus severity 0:
    its clean set). Every CocoMetric key of every set agrees exactly; P / mPC / rPC from mmdet's own
    aggregation (robustness_eval.get_coco_style_results) agree with ours. Its printed mPC / rPC average over
    all 5 severity slots, the unevaluated ones being 0, so at one severity they are 1/5 of the mean: that is
    checked too, and the comparison of mPC uses the evaluated slot."""
    tmp = coco['tmp']
    (tmp / 'mmdet_coco.py').write_text(MMDET_CONFIG)
    out = tmp / 'mmdet' / 'res.pkl'
    env = dict(os.environ, PYTHONPATH=MMDET_TOOLS, PYTHONWARNINGS='ignore')
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, osp.join(MMDET_TOOLS, 'tools', 'analysis_tools', 'test_robustness.py'),
                           str(tmp / 'mmdet_coco.py'), CKPT, '--out', str(out), '--corruptions', *CORRUPTIONS,
                           '--severities', '0', *map(str, SEVERITIES), '--final-prints', 'P', 'mPC', 'rPC',
                           '--work-dir', str(tmp / 'mmdet_work')], cwd=str(tmp), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results_file = str(tmp / 'mmdet' / 'res_results.pkl')
    with open(results_file, 'rb') as f:
        theirs = pickle.load(f)
    res, key = coco['result'], 'coco/bbox_mAP'
    # per set: every key CocoMetric returned is the same number (same pixels, same model, same metric)
    assert theirs[CORRUPTIONS[0]][0] == {k: v for k, v in res['clean']['metrics'].items()}
    for c in CORRUPTIONS:
        ours = res['corrupted'][c]['3']['metrics']
        assert theirs[c][3] == ours, c
    # P / mPC / rPC through mmdet's own aggregation code
    array = _mmdet_robustness_eval().get_coco_style_results(results_file, task='bbox', metric='mAP',
                                                             prints=[], aggregate='all')  # float32
    s = res['summary']
    P, mpc = float(array[0, 0, 0]), float(np.mean(array[:, 3, 0]))
    assert s['P'] == pytest.approx(P, abs=1e-6)
    assert s['mPC'] == pytest.approx(mpc, abs=1e-6) and s['rPC'] == pytest.approx(mpc / P, abs=1e-6)
    assert float(np.mean(array[:, 1:, 0])) == pytest.approx(s['mPC'] / 5, abs=1e-6)  # its all-slot mean
    # its printed P is ours to the printed digit
    printed = re.search(r'\[P\] \(bbox\)\n Average Precision  \(AP\) @\[ IoU=0.50:0.95 \| area=   all \| '
                        r'maxDets=100 \] = ([\d.]+)', proc.stdout)
    assert printed and printed.group(1) == f"{s['P']:.3f}", proc.stdout[-2000:]


def test_report_names_the_key_and_says_when_there_are_no_per_class_values():
    from mmdet_adasap.robustness.report import markdown_report
    from mmdet_adasap.robustness.result import build_result
    rec = lambda v: dict(mAP=v, per_class={}, metrics={'coco/bbox_mAP_50': v}, source='clean', seconds=1.0)  # noqa
    res = build_result({'clean': rec(0.5), 'fog/3': rec(0.25)}, ['fog'], [3], dict(label='m'),
                       dict(ann_file='a.json', num_images=2, classes=['x']),
                       dict(metric='coco/bbox_mAP_50', metric_key='coco/bbox_mAP_50', metric_type='CocoMetric',
                            iou_thr=None, eval_mode=None, seed=0, cache_root=None, cache_format=None))
    assert res['summary']['metric_key'] == 'coco/bbox_mAP_50' and res['summary']['rPC'] == 0.5
    md = markdown_report(res)
    assert '| P (clean, coco/bbox_mAP_50) | mPC |' in md and 'no per-class values for `coco/bbox_mAP_50`' in md
