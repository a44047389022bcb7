"""Every real-VOC dense config predicts the 20 VOC classes, and its AdaSAP config trains and evaluates exactly its
model and data.

The training and the evaluation themselves run in tests/test_configs/test_adasap_configs.py: each detector's
``*_adasap_flops50`` config runs real iterations of all three phases on the tiny synthetic VOCdevkit, then the
test loop through VOCMetric. That config is a ``_base_`` override of the dense config, and the test below asserts
that it leaves the model, the datasets, their pipelines and the evaluators as the dense config has them, so one
run shows both.
"""
import os.path as osp

import pytest

import mmdet_adasap  # noqa: F401
from helpers import SMOKE_SCALES
from mmdet_adasap.apis import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIGS = {f'configs/{family}/{model}_dense.py': model
           for family, model in (('ssd', 'ssd300_voc0712'), ('ssd', 'ssd512_voc0712'), ('ssd', 'ssdlite-mbv2_voc0712'),
                                 ('faster_rcnn', 'faster-rcnn_r50_fpn_voc0712'))}
SHARED = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')


def test_every_real_voc_detector_is_covered():
    assert sorted(CONFIGS.values()) == sorted(SMOKE_SCALES)


@pytest.mark.parametrize('config', list(CONFIGS))
def test_real_voc_dense_config_is_what_its_adasap_config_trains_and_evaluates(config):
    cfg = load_config(osp.join(REPO, config))
    n_classes = cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head', {})).get('num_classes')
    assert n_classes == 20, f'{config} must predict the 20 VOC classes'
    assert 'VOC2007' in str(cfg.test_dataloader.dataset) and cfg.test_evaluator.type == 'VOCMetric'
    adasap = load_config(osp.join(REPO, f'configs/adasap/{CONFIGS[config]}_adasap_flops50.py'))
    for key in SHARED:
        assert adasap[key] == cfg[key], f'{key} of the AdaSAP config differs from {config}'
