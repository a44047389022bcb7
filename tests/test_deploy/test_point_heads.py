"""RTMDet and YOLOX: ONNX export with post-processing, dense and pruned to 0.5 FLOPs, judged against mmdet's own
``predict``, and evaluated in ONNX Runtime by the same robustness loop and metric as in PyTorch.

Detectors are built from mmdet's own configs with the project's tame random initialisation
(``build_random_detector``) at 160 px. The evaluation config puts each on the tiny synthetic VOC with the
configs' own kind of test pipeline (keep-ratio Resize, then Pad with 114 to the square input), so images
arrive padded and with ``scale_factor`` != 1: the rescale to original pixels is under test. mAP is taken at
IoU 0.1 (random weights).
"""
import os.path as osp

import onnx
import pytest
import torch

from mmdet_adasap.apis import build_detector as build_from_config
from mmdet_adasap.apis import load_config
from mmdet_adasap.benchmarks.generality import MMDET_CONFIGS, build_random_detector, random_init_
from mmdet_adasap.deploy import (ExportError, OnnxDetector, check_parity, export_detector, export_onnx,
                                 match_detections)
from mmdet_adasap.pruning import ChannelPruner, channel_file_of, save_pruned_checkpoint
from mmdet_adasap.robustness.api import evaluate_robustness
from pruning_fixtures import REPO

SIDE = 160
HEADS = {'rtmdet': f'{MMDET_CONFIGS}/rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
         'yolox': f'{MMDET_CONFIGS}/yolox/yolox_s_8xb8-300e_coco.py'}
PRE_NMS = {'rtmdet': {'boxes', 'scores'}, 'yolox': {'boxes', 'scores', 'objectness'}}
DEMO = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')



def _assert_judged_equal(report):
    assert report.ok, report.failures
    assert report.detections > 0 and report.matched == report.detections and report.tie_explained == 0, \
        report.summary()


@pytest.mark.parametrize('name', sorted(HEADS))
def test_dense_export_matches_pytorch_dynamic_and_fixed_batch(name, tmp_path):
    model, _ = build_random_detector(HEADS[name])
    out = str(tmp_path / f'{name}_dynamic.onnx')
    meta = export_onnx(model, out, (SIDE, SIDE), batch='dynamic')
    assert 'NonMaxSuppression' in {n.op_type for n in onnx.load(out).graph.node}
    assert [o.name for o in onnx.load(out).graph.output] == ['dets', 'labels']  # pre-NMS tensors stay inside
    assert set(meta['pre_nms']) == PRE_NMS[name] and meta['postprocess']['level_sizes'] == [400, 100, 25]
    for batch in (1, 3):
        _assert_judged_equal(check_parity(model, out, batch=batch, seed=batch, threads=1))
    fixed = str(tmp_path / f'{name}_b2.onnx')
    export_onnx(model, fixed, (SIDE, SIDE), batch=2)
    _assert_judged_equal(check_parity(model, fixed, batch=4, threads=1))  # two runs of the fixed batch


@pytest.mark.parametrize('name', sorted(HEADS))
def test_pruned_checkpoint_exports_through_its_pruned_config_and_matches(name, tmp_path):
    """One-shot prune to 0.5 FLOPs, saved as a pruned checkpoint, built again as the config's ``PrunedDetector``
    (what tools/export_onnx.py does with a configs/pruned/ config), exported at a fixed and a dynamic batch."""
    from mmengine.config import Config
    model, cfg = build_random_detector(HEADS[name])
    pruner = ChannelPruner(model, (1, 3, SIDE, SIDE), target=dict(type='flops', ratio=0.5))
    pruner.prune_one_shot()
    assert abs(pruner.cost_ratio() - 0.5) < 0.02
    pruned, channels = pruner.export_with_config()
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), pruned, channels)
    pruned_cfg = Config(dict(model=dict(type='PrunedDetector', architecture=cfg.model,
                                        channels=channel_file_of(ckpt))))
    fixed = str(tmp_path / f'{name}_pruned_b2.onnx')
    built, meta = export_detector(pruned_cfg, ckpt, fixed, batch=2, input_hw=(SIDE, SIDE))
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in pruned.parameters())
    assert meta['batch'] == 2
    _assert_judged_equal(check_parity(built, fixed, batch=2, threads=1))
    dynamic = str(tmp_path / f'{name}_pruned_dynamic.onnx')
    export_onnx(built, dynamic, (SIDE, SIDE), batch='dynamic')
    _assert_judged_equal(check_parity(built, dynamic, batch=3, seed=3, threads=1))


def test_yolox_input_must_be_a_multiple_of_its_pad_divisor(tmp_path):
    model, _ = build_random_detector(HEADS['yolox'])
    with pytest.raises(ExportError, match=r'input size \(150, 150\) is not a multiple .*\(32\)'):
        export_onnx(model, str(tmp_path / 'y.onnx'), (150, 150))


# ------------------------------------------------------------------------------------------ evaluation
def _eval_config(name: str, tmp_path) -> str:
    """The demo's synthetic VOC set and metric around mmdet's ``name`` detector (6 classes), keep-ratio Resize
    to SIDE and Pad with 114 as the RTMDet / YOLOX configs do."""
    model = load_config(HEADS[name]).model.to_dict()
    model['bbox_head']['num_classes'] = 6
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(SIDE, SIDE), keep_ratio=True),
                dict(type='Pad', size=(SIDE, SIDE), pad_val=dict(img=(114, 114, 114))),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'pad_shape',
                                                      'scale_factor'))]
    path = tmp_path / f'{name}_synthvoc.py'
    path.write_text(f'_base_ = {DEMO!r}\nmodel = dict(_delete_=True, **{model!r})\n'
                    f'test_dataloader = dict(dataset=dict(pipeline={pipeline!r}))\n')
    return str(path)


def _options(tiny_voc):
    return {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False, 'test_dataloader.batch_size': 4,
            'test_evaluator.iou_thrs': 0.1}


@pytest.mark.parametrize('name', sorted(HEADS))
def test_onnxruntime_evaluation_matches_pytorch(name, tiny_voc, tmp_path):
    from mmengine.runner import Runner
    config = _eval_config(name, tmp_path)
    cfg = load_config(config, _options(tiny_voc))
    model, _ = build_from_config(cfg)
    random_init_(model.eval())
    ckpt, onnx_file = str(tmp_path / 'random.pth'), str(tmp_path / f'{name}.onnx')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    export_onnx(model, onnx_file, (SIDE, SIDE), batch='dynamic')
    ort, rescaled = OnnxDetector(onnx_file, threads=1), 0
    for batch in Runner.build_dataloader(cfg.test_dataloader):
        with torch.no_grad():
            ref = model.test_step(batch)
        for r, o in zip(ref, ort.test_step(batch)):
            rescaled += any(abs(f - 1) > 1e-3 for f in r.metainfo['scale_factor'])
            a, b = r.pred_instances, o.pred_instances
            m = match_detections(a.bboxes, a.scores, a.labels, b.bboxes, b.scores, b.labels)
            assert len(a.scores) > 0 and m['unmatched'] == 0 and m['score'] < 1e-4, m
            assert m['box'] / max(r.metainfo['ori_shape']) < 1e-4, m
    assert rescaled > 0
    results = {}
    for backend, path in (('pytorch', ckpt), ('onnxruntime', onnx_file)):
        results[backend] = evaluate_robustness(config, path, str(tmp_path / backend), ['gaussian_noise'], [2],
                                               plots=False, cfg_options=_options(tiny_voc), backend=backend)
    ref, got = results['pytorch']['summary'], results['onnxruntime']['summary']
    assert ref['P'] > 0 and ref['mPC'] > 0, ref
    for key in ('P', 'mPC'):
        assert abs(ref[key] - got[key]) < 0.002, (key, ref, got)
