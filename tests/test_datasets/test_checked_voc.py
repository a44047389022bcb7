"""mmdet's stock VOC classes load and score the synthetic set; our checked dataset names bad input."""
import re
import shutil

import pytest
import torch

import mmdet_adasap  # noqa: F401
from mmdet.datasets import VOCDataset
from mmdet.evaluation import VOCMetric
from mmdet_adasap.datasets import SYNTHETIC_VOC_CLASSES, CheckedVOCDataset, SyntheticVOCDataset


def _voc(cls, root, **kw):
    return cls(data_root=root, ann_file='VOC2007/ImageSets/Main/test.txt', data_prefix=dict(sub_data_root='VOC2007/'),
               test_mode=True, pipeline=[], **kw)


def _score(ds, relabel=lambda labels: labels):
    metric = VOCMetric(metric='mAP', eval_mode='11points')
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]['data_samples'].to_dict()
        gt = sample['gt_instances']
        sample['pred_instances'] = dict(bboxes=gt['bboxes'], scores=torch.ones(len(gt['labels'])),
                                        labels=relabel(gt['labels']))
        metric.process({}, [sample])
    return metric.evaluate(len(ds))['pascal_voc/mAP']


def test_stock_voc_dataset_and_metric_load_and_score_the_synthetic_set(tiny_voc):
    pipeline = [dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs', meta_keys=('img_id', ))]
    ds = VOCDataset(data_root=tiny_voc, ann_file='VOC2007/ImageSets/Main/test.txt', test_mode=True,
                    data_prefix=dict(sub_data_root='VOC2007/'), metainfo=dict(classes=SYNTHETIC_VOC_CLASSES),
                    pipeline=pipeline)
    assert len(ds) == 6 and sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) > 0
    assert _score(ds) == pytest.approx(1.0)  # ground truth as prediction is perfect
    assert _score(ds, relabel=lambda labels: (labels + 1) % len(SYNTHETIC_VOC_CLASSES)) < 0.2  # wrong classes


def test_synthetic_dataset_carries_its_classes(tiny_voc):
    ds = _voc(SyntheticVOCDataset, tiny_voc)
    assert ds.metainfo['classes'] == SYNTHETIC_VOC_CLASSES
    assert len(ds.metainfo['palette']) == len(SYNTHETIC_VOC_CLASSES)


def _copy(tiny_voc, tmp_path):
    """A private copy of the tiny set and the first test annotation that has an object."""
    dst = tmp_path / 'VOCdevkit'
    shutil.copytree(tiny_voc, dst)
    ids = open(dst / 'VOC2007/ImageSets/Main/test.txt').read().split()
    xmls = [dst / 'VOC2007' / 'Annotations' / f'{i}.xml' for i in ids]
    return str(dst), next(x for x in xmls if '<object>' in x.read_text())


def test_missing_data_root_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        _voc(SyntheticVOCDataset, str(tmp_path / 'nowhere'))


def test_unknown_class_names_the_file_and_class(tiny_voc, tmp_path):
    root, xml = _copy(tiny_voc, tmp_path)
    xml.write_text(re.sub(r'<name>[^<]*</name>', '<name>dragon</name>', xml.read_text(), count=1))
    with pytest.raises(ValueError, match=rf"{xml.name}.*'dragon'"):
        _voc(SyntheticVOCDataset, root)
    ds = _voc(SyntheticVOCDataset, root, unknown_class='skip')  # opting in to mmdet's silent skip
    assert len(ds) == 6


def test_malformed_xml_names_the_file(tiny_voc, tmp_path):
    root, xml = _copy(tiny_voc, tmp_path)
    xml.write_text(xml.read_text()[:-40])
    with pytest.raises(ValueError, match=rf'{xml.name}: malformed VOC XML'):
        _voc(CheckedVOCDataset, root, metainfo=dict(classes=SYNTHETIC_VOC_CLASSES))


def test_incomplete_annotation_names_the_file(tiny_voc, tmp_path):
    root, xml = _copy(tiny_voc, tmp_path)
    xml.write_text(xml.read_text().replace('<xmin>', '<xmin_typo>', 1).replace('</xmin>', '</xmin_typo>', 1))
    with pytest.raises(ValueError, match=rf'{xml.name}: incomplete VOC annotation'):
        _voc(SyntheticVOCDataset, root)
