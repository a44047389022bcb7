"""Every real-VOC config builds and runs one real training iteration and one evaluation on synthetic VOC.

Only what cannot work offline or in minutes changes: data root (the tiny synthetic VOCdevkit with its classes),
pretrained-weight downloads (off), number of images, and, where the architecture allows, the image scale.
"""
import os.path as osp

import pytest
from mmengine.runner import Runner

import mmdet_adasap  # noqa: F401
from helpers import SMOKE_SCALES, shrink_for_smoke_test
from mmdet_adasap.apis import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIGS = {  # config: reduced Resize scale for the test
    f'configs/{family}/{model}_dense.py': SMOKE_SCALES[model]
    for family, model in (('ssd', 'ssd300_voc0712'), ('ssd', 'ssd512_voc0712'), ('ssd', 'ssdlite-mbv2_voc0712'),
                          ('faster_rcnn', 'faster-rcnn_r50_fpn_voc0712'))
}


@pytest.mark.parametrize('config', list(CONFIGS))
def test_real_voc_config_trains_and_evaluates_one_iteration(config, tiny_voc, tmp_path):
    cfg = load_config(osp.join(REPO, config))
    n_classes = cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head', {})).get('num_classes')
    assert n_classes == 20, f'{config} must predict the 20 VOC classes'
    cfg = shrink_for_smoke_test(cfg, tiny_voc, str(tmp_path), scale=CONFIGS[config])
    cfg.train_cfg.val_interval = 10 ** 6  # evaluated once, by the test loop below
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6, save_last=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == len(runner.train_dataloader) >= 1, 'one epoch of real training iterations'
    metrics = runner.message_hub.log_scalars
    assert 'train/loss' in metrics and metrics['train/loss'].current() > 0
    metrics = runner.test()  # the test loop on the test split, through VOCMetric
    assert 0.0 <= metrics['pascal_voc/mAP'] <= 1.0
