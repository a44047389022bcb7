"""RobustnessValLoop during training: a config can validate on corrupted sets and keep the best mPC."""
import json
import os.path as osp

import pytest
from helpers import shrink_for_smoke_test
from mmengine.config import Config
from mmengine.runner import Runner


def test_val_loop_in_training_reports_mpc_for_save_best(tiny_voc, tmp_path):
    cfg = shrink_for_smoke_test(Config.fromfile('configs/demo/ssd-r18mini_synthvoc_dense.py'), tiny_voc,
                                str(tmp_path), samples=2)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.val_cfg = dict(type='RobustnessValLoop', corruptions=['fog'], severities=[1, 5])
    cfg.val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points', iou_thrs=0.1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False,
                                        save_best='robustness/mPC', rule='greater')
    cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(tmp_path / 'robustness' / 'iter_2' / 'robustness.json') as f:
        res = json.load(f)
    assert osp.isfile(tmp_path / 'best_robustness_mPC_iter_2.pth')
    hub = runner.message_hub
    assert hub.get_scalar('val/robustness/mPC').current() == pytest.approx(res['summary']['mPC'])
    assert hub.get_scalar('val/pascal_voc/mAP').current() == pytest.approx(res['clean']['mAP'])
    assert res['summary']['mPC'] == pytest.approx((res['corrupted']['fog']['1']['mAP'] +
                                                   res['corrupted']['fog']['5']['mAP']) / 2)
    assert res['dataset']['num_images'] == 2
