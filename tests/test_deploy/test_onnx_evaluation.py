"""The exported model evaluated by ONNX Runtime through the same Runner loop, metric and robustness code.

Weights are a fixed tame random initialisation, so mAP is measured at IoU 0.1 (as in
test_robustness/test_evaluation.py) to make it non-zero; the code path is the metric's for any threshold.
The images go through the real test pipeline (160-224 px images resized to 256: scale_factor != 1), so the
rescale back to original pixels is under test too.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmdet_adasap.apis import build_detector as build_from_config
from mmdet_adasap.apis import load_config
from mmdet_adasap.deploy import OnnxDetector, export_onnx, match_detections
from mmdet_adasap.robustness.api import evaluate_robustness
from pruning_fixtures import REPO, build_detector

CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')


def _options(tiny_voc):
    return {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False, 'test_dataloader.batch_size': 4,
            'test_evaluator.iou_thrs': 0.1}


@pytest.fixture(scope='module')
def exported(tiny_voc, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see pruning_fixtures.single_thread
    tmp = tmp_path_factory.mktemp('onnx_eval')
    model = build_detector('demo')
    ckpt = str(tmp / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    onnx_file = str(tmp / 'demo.onnx')
    export_onnx(model, onnx_file, (256, 256), batch=2)  # static batch 2: batches of 4 and 2 run in chunks
    yield dict(tmp=tmp, ckpt=ckpt, onnx=onnx_file, model=model)
    torch.set_num_threads(before)


def test_onnx_detector_test_step_matches_pytorch_in_original_pixels(exported, tiny_voc):
    from mmengine.runner import Runner
    cfg = load_config(CONFIG, _options(tiny_voc))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    pytorch, _ = build_from_config(cfg, exported['ckpt'])
    ort = OnnxDetector(exported['onnx'], threads=1)
    rescaled = 0
    for batch in loader:
        with torch.no_grad():
            ref = pytorch.test_step(copy.deepcopy(batch))
        out = ort.test_step(copy.deepcopy(batch))
        for r, o in zip(ref, out):
            rescaled += tuple(r.metainfo['scale_factor']) != (1.0, 1.0)
            a, b = r.pred_instances, o.pred_instances
            m = match_detections(a.bboxes, a.scores, a.labels, b.bboxes, b.scores, b.labels)
            side = max(r.metainfo['ori_shape'])
            assert m['unmatched'] == 0 and len(a.scores) > 0, m
            assert m['box'] / side < 1e-4 and m['score'] < 1e-4, m
    assert rescaled > 0


def test_robustness_evaluation_through_onnxruntime_matches_pytorch(exported, tiny_voc):
    results = {}
    for backend, model in (('pytorch', exported['ckpt']), ('onnxruntime', exported['onnx'])):
        results[backend] = evaluate_robustness(
            CONFIG, model, str(exported['tmp'] / backend), ['gaussian_noise'], [2], plots=False,
            cfg_options=_options(tiny_voc), backend=backend)
    torch_summary, ort_summary = results['pytorch']['summary'], results['onnxruntime']['summary']
    assert torch_summary['P'] > 0 and torch_summary['mPC'] > 0  # IoU 0.1: non-trivial numbers to compare
    for key in ('P', 'mPC'):
        assert abs(torch_summary[key] - ort_summary[key]) < 0.002, (key, torch_summary, ort_summary)


def test_backend_errors_name_the_file(tmp_path):
    from mmdet_adasap.deploy import use_onnxruntime
    cfg = Config(dict(model=dict(type='SingleStageDetector')))
    with pytest.raises(FileNotFoundError, match='nope.onnx'):
        use_onnxruntime(cfg, str(tmp_path / 'nope.onnx'))
    pth = tmp_path / 'model.pth'
    pth.write_bytes(b'x')
    with pytest.raises(ValueError, match='needs the exported .onnx file'):
        use_onnxruntime(cfg, str(pth))


def test_a_config_with_an_ema_hook_evaluates_its_onnx_file(exported, tiny_voc):
    """RTMDet's and YOLOX's configs average the weights in an ``EMAHook``, which copies the model when the Runner
    starts: an ONNX model (an ORT session) cannot be copied, and its weights are already the EMA ones the export
    took. The hook is dropped for the ONNX evaluation, the other custom hooks stay."""
    from mmdet_adasap.deploy import use_onnxruntime
    options = dict(_options(tiny_voc), custom_hooks=[dict(type='EMAHook', momentum=0.0002),
                                                     dict(type='SyncNormHook')])
    cfg = use_onnxruntime(load_config(CONFIG, options), exported['onnx'])
    assert [h['type'] for h in cfg.custom_hooks] == ['SyncNormHook']
    summary = evaluate_robustness(CONFIG, exported['onnx'], str(exported['tmp'] / 'ema'), ['gaussian_noise'], [2],
                                  plots=False, cfg_options=options, backend='onnxruntime')['summary']
    assert summary['P'] > 0
