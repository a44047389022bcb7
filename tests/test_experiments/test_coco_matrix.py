"""The comparison harness on COCO-format data: a 2-method, 1-seed matrix whose dense config is the demo detector
with ``CocoDataset`` + ``CocoMetric`` (configs/demo/ssd-r18mini_synthcoco_dense.py), on the tiny synthetic set
converted to COCO json by the converter (tools/voc_to_coco.py's library function), 3 iterations per run, 1
corruption at 1 severity. Its table reads the COCO key (``coco/bbox_mAP``, the evaluator's default) and says so,
every number equals the runs' own robustness results on that key (a set without any detection, where
CocoMetric returns nothing, counts as AP 0), and a key the evaluator does not return or a
pruned config that evaluates with another metric is refused when the matrix is read, before anything runs.

The dense start is the committed demo checkpoint (trained on the same images and classes), so that COCO's
AP@[.5:.95] is not 0 everywhere.
"""
import json
import os.path as osp

import pytest
import torch

from conftest import REPO
from helpers import shrink_adasap_for_smoke_test, write_matrix
from mmdet_adasap.experiments import load_matrix, run_matrix
from mmdet_adasap.robustness.voc_coco import voc_to_coco

METHODS = {'l2prune_sgd': 'L2 + SGD', 'adasap': 'AdaSAP'}
DENSE_CKPT = osp.join(REPO, 'docs/results/demo/dense_start.pth')
KEY = 'coco/bbox_mAP'


def _coco_data(tiny_voc, tmp):
    """The tiny VOC set as COCO json (train: VOC2007 + VOC2012 trainval, test: VOC2007 test)."""
    train, test = str(tmp / 'instances_trainval.json'), str(tmp / 'instances_test.json')
    voc_to_coco(tiny_voc, train, 'trainval', ['VOC2007', 'VOC2012'])
    voc_to_coco(tiny_voc, test, 'test', ['VOC2007'])
    return train, test


def _matrix_file(tmp, tiny_voc, test_json, extra=''):
    methods = {k: dict(config=osp.join(REPO, f'configs/compare/methods/ssd-r18mini_synthcoco_{k}_flops50.py'),
                       label=v) for k, v in METHODS.items()}
    opts = {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.dataset.ann_file': test_json,
            'test_dataloader.dataset.data_prefix.img': '', 'test_evaluator.ann_file': test_json,
            'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False}
    dense = dict(config=osp.join(REPO, 'configs/demo/ssd-r18mini_synthcoco_dense.py'), checkpoint=DENSE_CKPT)
    pruned = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthcoco_pruned.py')
    return write_matrix(str(tmp / 'matrix.py'), dense, pruned, methods, [1], ['contrast'], opts, extra)


def _shrink(tiny_voc, train_json, test_json):
    """3 iterations (one per AdaSAP phase) on 4 images of the COCO json, from the dense start."""
    def transform(cfg, run):
        load_from = cfg.load_from
        cfg = shrink_adasap_for_smoke_test(cfg, tiny_voc, cfg.work_dir, (1, 1, 1), samples=4)
        cfg.load_from = load_from
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1)
        for loader, ann in (('train_dataloader', train_json), ('val_dataloader', test_json),
                            ('test_dataloader', test_json)):
            cfg[loader].dataset.update(ann_file=ann, data_prefix=dict(img=''))
        cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = test_json
        return cfg
    return transform


@pytest.fixture(scope='module')
def coco_matrix(tiny_voc, tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('coco_matrix')
    train_json, test_json = _coco_data(tiny_voc, tmp)
    matrix = load_matrix(_matrix_file(tmp, tiny_voc, test_json))
    out, logs = str(tmp / 'out'), []
    paths = run_matrix(matrix, out, transform=_shrink(tiny_voc, train_json, test_json), log=logs.append)
    with open(paths['markdown']) as f:
        print(f.read())  # the table as the harness wrote it (pytest -s shows it)
    return dict(matrix=matrix, out=out, paths=paths, tmp=tmp, tiny_voc=tiny_voc, test_json=test_json)


def test_coco_matrix_table_reads_and_names_the_coco_key(coco_matrix):
    matrix, out, paths = coco_matrix['matrix'], coco_matrix['out'], coco_matrix['paths']
    assert matrix.evaluation['metric_key'] == KEY  # from the dense config's CocoMetric, as the robustness loop
    with open(paths['json']) as f:
        res = json.load(f)
    assert res['metric_key'] == KEY == res['protocol']['metric_key'] and len(res['runs']) == 2
    for rec in res['runs'] + [res['dense']]:
        folder = osp.join(out, 'dense') if rec['method'] == 'dense' else \
            osp.join(out, 'runs', rec['method'], 'ratio0.5', 'seed1')
        with open(osp.join(folder, rec['robustness'])) as f:
            result = json.load(f)
        assert result['protocol']['metric_type'] == 'CocoMetric' and result['summary']['metric_key'] == KEY
        assert result['clean']['metrics'][KEY] == result['summary']['P']
        assert rec['clean_map'] == pytest.approx(100 * result['summary']['P'])
        assert rec['mpc'] == pytest.approx(100 * result['summary']['mPC'])
    assert res['dense']['clean_map'] > 5  # the trained dense start really finds objects under COCO's AP
    # the L2 + SGD model detects nothing under contrast: CocoMetric then returns no key at all, and AP counts as 0
    with open(osp.join(out, 'runs', 'l2prune_sgd', 'ratio0.5', 'seed1', 'robustness', 'sets', 'contrast-s3.json')) as f:
        empty = json.load(f)
    assert empty['metrics'] == {f'coco/bbox_{s}': 0.0 for s in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')}
    with open(paths['markdown']) as f:
        md = f.read()
    assert f'metric key `{KEY}`' in md
    for label in METHODS.values():
        assert f'| {label} | 1 |' in md
    for key in ('flops_plot', 'category_plot'):
        with open(paths[key], 'rb') as f:
            assert f.read(4) == b'\x89PNG'


def test_a_protocol_recorded_before_metric_key_reads_as_voc():
    from mmdet_adasap.experiments.run import check_protocol
    keyless, voc = dict(split='test'), dict(split='test', metric_key='pascal_voc/mAP')
    check_protocol('record.json', keyless, voc, 'run')  # a VOC matrix's finished runs are still its runs
    check_protocol('record.json', keyless, keyless, 'run')  # and a table of keyless records rebuilds (--table-only)
    with pytest.raises(ValueError, match="made with metric_key='pascal_voc/mAP', but the matrix now has "
                                         "metric_key='coco/bbox_mAP'"):
        check_protocol('record.json', keyless, dict(keyless, metric_key=KEY), 'run')


def test_bad_key_and_mismatched_metrics_refused_when_the_matrix_is_read(coco_matrix, tmp_path):
    tiny_voc, test_json = coco_matrix['tiny_voc'], coco_matrix['test_json']
    with pytest.raises(ValueError, match=r"metric key 'coco/bbox_AP50' is not among the keys CocoMetric returns: "
                                         r"coco/bbox_mAP, coco/bbox_mAP_50, .*evaluation.metric_key"):
        load_matrix(_matrix_file(tmp_path, tiny_voc, test_json, ", metric_key='coco/bbox_AP50'"))
    chosen = load_matrix(_matrix_file(tmp_path, tiny_voc, test_json, ", metric_key='coco/bbox_mAP_50'"))
    assert chosen.protocol('test', 'sha')['metric_key'] == 'coco/bbox_mAP_50'
    path = _matrix_file(tmp_path, tiny_voc, test_json)
    voc_pruned = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')
    with pytest.raises(ValueError, match=r"dense config evaluates \('CocoMetric', 'coco/bbox_mAP'\) and the pruned "
                                         r"config \('VOCPerClassMetric', 'pascal_voc/mAP'\)"):
        load_matrix(path, {'pruned_config': voc_pruned})
    two = [dict(type='CocoMetric', ann_file=test_json), dict(type='VOCMetric')]
    with pytest.raises(ValueError, match=r"one primary key.*\['CocoMetric', 'VOCMetric'\]"):
        load_matrix(path, {'evaluation.cfg_options.test_evaluator': two})
