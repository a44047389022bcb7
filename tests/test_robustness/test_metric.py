"""VOCPerClassMetric against mmdet's VOCMetric on hand-made detections (no model involved)."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.evaluation import VOCMetric
from mmdet.structures import DetDataSample

from mmdet_adasap.robustness.metric import PER_CLASS_PREFIX, VOCPerClassMetric

CLASSES = ('disc', 'box', 'triangle', 'star')


def _samples(seed=0, n=12):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 5))
        labels = rng.integers(0, 3, k)  # 'star' never occurs: no ground truth
        xy = rng.uniform(0, 150, (k, 2))
        gt = np.concatenate([xy, xy + rng.uniform(20, 80, (k, 2))], 1)
        # detections: jittered ground truth (some hits, some misses), some wrong labels, plus clutter
        det = gt + rng.normal(0, 12, gt.shape)
        det_labels = np.where(rng.random(k) < 0.8, labels, rng.integers(0, 4, k))
        clutter = rng.uniform(0, 200, (3, 2))
        det = np.concatenate([det, np.concatenate([clutter, clutter + 40], 1)])
        det_labels = np.concatenate([det_labels, rng.integers(0, 4, 3)])
        s = DetDataSample(metainfo=dict(img_id=str(i), ori_shape=(256, 256), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.tensor(gt, dtype=torch.float32),
                                      labels=torch.tensor(labels))
        s.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        s.pred_instances = InstanceData(bboxes=torch.tensor(det, dtype=torch.float32),
                                        scores=torch.tensor(rng.random(len(det)), dtype=torch.float32),
                                        labels=torch.tensor(det_labels))
        out.append(s.to_dict())
    return out


@pytest.mark.parametrize('eval_mode', ['11points', 'area'])
def test_map_equals_vocmetric_and_per_class_mean(eval_mode):
    samples = _samples()
    values = {}
    for cls in (VOCMetric, VOCPerClassMetric):
        m = cls(eval_mode=eval_mode)
        m.dataset_meta = dict(classes=CLASSES, dataset_type='VOC2007')
        m.process({}, samples)
        values[cls] = m.evaluate(len(samples))
    ours, ref = values[VOCPerClassMetric], values[VOCMetric]
    assert 0.05 < ref['pascal_voc/mAP'] < 0.95  # a non-trivial case
    assert ours['pascal_voc/mAP'] == ref['pascal_voc/mAP'] and ours['pascal_voc/AP50'] == ref['pascal_voc/AP50']
    per_class = {c: ours[f'pascal_voc/{PER_CLASS_PREFIX}{c}'] for c in CLASSES}
    assert math.isnan(per_class['star'])  # no ground truth: not an AP of 0
    # eval_map keeps APs in float32
    assert np.mean([per_class[c] for c in CLASSES[:3]]) == pytest.approx(ref['pascal_voc/mAP'], abs=1e-6)
    assert len(set(per_class[c] for c in CLASSES[:3])) == 3


def test_refuses_what_it_cannot_report():
    with pytest.raises(ValueError, match='one IoU threshold'):
        VOCPerClassMetric(iou_thrs=[0.5, 0.75])
    with pytest.raises(ValueError, match="metric='recall'"):
        VOCPerClassMetric(metric='recall')
