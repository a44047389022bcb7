"""The RTMDet and YOLOX configs: the synthetic-VOC dense starting points and the real-VOC fine-tunes from COCO
each build, keep their recipe's hooks, train real iterations on the tiny synthetic VOCdevkit and evaluate.

The real-VOC configs change only what cannot run offline or in seconds: data root, no COCO / ImageNet
download (``load_from`` is checked, then dropped), two images per split, and the 640 px scales of every
pipeline shrunk to 160 px.
"""
import os.path as osp
from types import SimpleNamespace

import pytest
import yaml
from mmengine.dataset import ConcatDataset
from mmengine.logging import MMLogger
from mmengine.runner import Runner

import mmdet
from helpers import shrink_for_smoke_test, shrink_scales
from mmdet.engine.hooks import PipelineSwitchHook
from mmdet.registry import DATASETS
from mmdet_adasap.apis import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYNTHETIC = {  # config: the recipe's hooks it keeps
    'configs/rtmdet/rtmdet-tiny_synthvoc_dense.py': ['EMAHook', 'PipelineSwitchHook'],
    'configs/yolox/yolox-s_synthvoc_dense.py': ['YOLOXModeSwitchHook', 'SyncNormHook', 'EMAHook'],
}
REAL_VOC = {  # config: the mmdet COCO config whose metafile checkpoint it fine-tunes
    'configs/rtmdet/rtmdet-tiny_voc0712_dense.py': 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    'configs/rtmdet/rtmdet-s_voc0712_dense.py': 'rtmdet/rtmdet_s_8xb32-300e_coco.py',
    'configs/yolox/yolox-s_voc0712_dense.py': 'yolox/yolox_s_8xb8-300e_coco.py',
}


def coco_checkpoint(mmdet_config: str) -> str:
    """The weights URL mmdet's metafile lists for one of its configs."""
    mim = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
    with open(osp.join(mim, osp.dirname(mmdet_config), 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    return next(m['Weights'] for m in models if m['Config'].endswith(mmdet_config))


def _train_and_test(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == len(runner.train_dataloader) >= 1, 'one epoch of real training iterations'
    assert runner.message_hub.log_scalars['train/loss'].current() > 0
    metrics = runner.test()  # the test split through VOCMetric
    assert 0.0 <= metrics['pascal_voc/mAP'] <= 1.0
    return runner


@pytest.mark.parametrize('config', list(SYNTHETIC))
def test_synthetic_dense_config_keeps_the_recipe_hooks_trains_and_evaluates(config, tiny_voc, tmp_path):
    cfg = load_config(osp.join(REPO, config))
    assert cfg.model.bbox_head.num_classes == 6 and cfg.input_size == 256
    assert cfg.test_pipeline[1] == dict(type='Resize', scale=(256, 256), keep_ratio=True)
    assert [h['type'] for h in cfg.custom_hooks] == SYNTHETIC[config]
    assert next(h for h in cfg.custom_hooks if h['type'] == 'EMAHook')['ema_type'] == 'ExpMomentumEMA'
    assert cfg.val_evaluator == dict(type='VOCMetric', metric='mAP', eval_mode='11points')
    runner = _train_and_test(shrink_for_smoke_test(cfg, tiny_voc, str(tmp_path)))
    assert {type(h).__name__ for h in runner.hooks} >= set(SYNTHETIC[config])


@pytest.mark.parametrize('config', list(REAL_VOC))
def test_real_voc_config_fine_tunes_coco_weights_on_voc0712(config, tiny_voc, tmp_path):
    cfg = load_config(osp.join(REPO, config))
    assert cfg.load_from == coco_checkpoint(REAL_VOC[config]), 'the official COCO checkpoint of this model'
    assert cfg.model.bbox_head.num_classes == 20
    assert cfg.val_evaluator == dict(type='VOCMetric', metric='mAP', eval_mode='11points')
    train = cfg.train_dataloader.dataset
    train = train.get('dataset', train) if train.type == 'MultiImageMixDataset' else train
    assert [d.ann_file for d in train.datasets] == [f'VOC{y}/ImageSets/Main/trainval.txt' for y in (2007, 2012)]
    assert cfg.test_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'
    cfg = shrink_for_smoke_test(shrink_scales(cfg, 160), tiny_voc, str(tmp_path))
    cfg.load_from = None  # offline: COCO weights are the user's download
    _train_and_test(cfg)


def _mosaic_in(dataset) -> bool:
    return any(type(t).__name__ == 'CachedMosaic' for t in dataset.pipeline.transforms)


def test_rtmdet_second_stage_reaches_the_datasets_inside_voc0712s_concatenation(tiny_voc):
    """mmdet's PipelineSwitchHook sets the pipeline of the dataloader's dataset, which for VOC07+12 is a
    ConcatDataset that no sample goes through; mmdet_adasap.upstream_fixes switches the years' datasets."""
    cfg = shrink_for_smoke_test(load_config(osp.join(REPO, 'configs/rtmdet/rtmdet-tiny_voc0712_dense.py')),
                                tiny_voc, '/unused')
    switch = next(h for h in cfg.custom_hooks if h['type'] == 'PipelineSwitchHook')
    for before_train_epoch, switched in ((PipelineSwitchHook.before_train_epoch.__wrapped__, False),
                                         (PipelineSwitchHook.before_train_epoch, True)):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        assert isinstance(dataset, ConcatDataset) and all(_mosaic_in(d) for d in dataset.datasets)
        hook = PipelineSwitchHook(switch_epoch=switch.switch_epoch, switch_pipeline=switch.switch_pipeline)
        runner = SimpleNamespace(epoch=switch.switch_epoch, train_dataloader=SimpleNamespace(dataset=dataset),
                                 logger=MMLogger.get_current_instance())
        before_train_epoch(hook, runner)
        assert hook._has_switched
        assert [_mosaic_in(d) for d in dataset.datasets] == [not switched] * 2
        if switched:  # a sample now comes out of the second stage: no mosaic canvas, padded to the crop size
            assert tuple(dataset[0]['inputs'].shape[1:]) == (640, 640)
