"""ONNX export with post-processing inside the graph, checked against mmdet's own PyTorch test path.

The reference is mmdet's ``predict`` (data preprocessor, head, ``_bbox_post_process`` with mmcv NMS) on the same
raw images, not our graph run eagerly, so decoding, top-k, NMS and preprocessing are all under test. Detections
are judged by ``check_parity`` (pre-NMS tensors, then kept sets matched robustly to ties). Weights are the
pruning tests' tame random initialisation (outputs O(1), many overlapping boxes: NMS does real work, scores
spread enough that no tie decides anything: every kept detection must find its partner).
"""
import copy
import os.path as osp

import numpy as np
import onnx
import pytest
import torch

from mmdet_adasap.apis import load_config
from mmdet_adasap.deploy import (ExportError, check_parity, export_detector, export_onnx, make_session,
                                 match_detections, read_metadata)
from mmdet_adasap.deploy.parity import TOLERANCE
from mmdet_adasap.pruning import save_pruned_checkpoint
from helpers import load_tool
from mmdet_adasap.apis.cli import error_line
from pruning_fixtures import REPO, build_detector

export_tool = load_tool('export_onnx')

TOL = 1e-4
DEMO = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
DEMO_PRUNED = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')



def _assert_parity(p, ties=False):
    """The verdict (tolerances: ``parity.Tolerance``) and, with tame weights, every detection paired."""
    assert p.ok, p.failures
    assert p.detections > 0 and p.pre_nms and max(p.pre_nms.values()) < TOL, p
    assert p.score < TOLERANCE.score and p.box_rel < TOLERANCE.box_rel, p
    if not ties:
        assert p.matched == p.detections and p.tie_explained == 0, p.summary()


def test_demo_dense_dynamic_batch_matches_pytorch_at_two_batch_sizes(tmp_path):
    model = build_detector('demo')
    out = str(tmp_path / 'demo.onnx')
    meta = export_onnx(model, out, (256, 256), batch='dynamic')
    graph = onnx.load(out)
    ops = {n.op_type for n in graph.graph.node}
    assert 'NonMaxSuppression' in ops and 'TopK' in ops  # post-processing is inside the graph
    assert meta == read_metadata(out) and meta['input_hw'] == [256, 256] and meta['bgr_to_rgb']
    session = make_session(out, threads=1)
    for batch in (1, 3):
        _assert_parity(check_parity(model, out, batch=batch, seed=batch, threads=1))
    # the same image gives the same detections alone and inside a batch
    x = torch.randint(0, 256, (3, 3, 256, 256), generator=torch.Generator().manual_seed(5)).float().numpy()
    d3, l3 = session.run(None, {'input': x})
    d1, l1 = session.run(None, {'input': x[1:2]})
    assert d3.shape == (3, 100, 5) and l3.shape == (3, 100)
    np.testing.assert_allclose(d3[1], d1[0], atol=TOL)
    assert (l3[1] == l1[0]).all()


def test_demo_pruned_checkpoint_exports_through_the_pruned_config_and_matches(pruned_export, tmp_path):
    _, pruned, channels = pruned_export('demo')
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), pruned, channels)
    out = str(tmp_path / 'pruned.onnx')
    model, meta = export_detector(load_config(DEMO_PRUNED), ckpt, out, batch=2)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in pruned.parameters())
    assert meta['batch'] == 2
    _assert_parity(check_parity(model, out, batch=2, threads=1))


def test_faster_rcnn_tiny_input_matches_pytorch(tmp_path):
    model = build_detector('faster_rcnn')
    out = str(tmp_path / 'frcnn.onnx')
    export_onnx(model, out, (128, 128), batch=1)
    assert 'RoiAlign' in {n.op_type for n in onnx.load(out).graph.node}
    _assert_parity(check_parity(model, out, batch=1, threads=1))


def test_match_detections_pairs_ties_in_any_order_and_counts_leftovers():
    g = np.random.default_rng(0)
    boxes, scores, labels = g.random((6, 4)) * 100, np.array([.9, .5, .5, .4, .3, .3]), np.array([0, 1, 1, 0, 2, 2])
    perm = [5, 2, 0, 1, 4, 3]
    assert match_detections(boxes, scores, labels, boxes[perm], scores[perm], labels[perm])['box'] == 0
    r = match_detections(boxes, scores, labels, boxes[:5] + 0.25, scores[:5], labels[:5])
    assert r['unmatched'] == 1 and abs(r['box'] - 0.25) < 1e-9


# ------------------------------------------------------------------------------------------ bad input
def _expect_error(argv, *words):
    """The one line the command prints: a SystemExit's message, or the exception as run_tool prints it."""
    try:
        export_tool.main(argv)
    except SystemExit as e:
        msg = str(e.code)
    except Exception as e:  # noqa: BLE001
        msg = error_line(e)
    else:
        raise AssertionError(f'no error for {argv}')
    assert msg.startswith('error:') and all(w in msg for w in words), msg
    return msg


def test_tool_names_bad_input(pruned_export, tmp_path):
    _, pruned, channels = pruned_export('demo')
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), pruned, channels)
    out = str(tmp_path / 'x.onnx')
    layer = next(iter(channels))
    _expect_error([DEMO, ckpt, out], 'pruned checkpoint', layer, 'PrunedDetector', 'configs/pruned')
    _expect_error([DEMO_PRUNED, ckpt, out, '--opset', '9'], 'opset 9', '>= 11')
    missing = str(tmp_path / 'no_such_dir' / 'x.onnx')
    _expect_error([DEMO_PRUNED, ckpt, missing], 'no_such_dir', 'does not exist')
    assert not osp.exists(out) and not osp.exists(osp.dirname(missing))

    retina = tmp_path / 'retina.py'  # the demo with a head the exporter does not handle
    retina.write_text(f"_base_ = {DEMO!r}\nmodel = dict(bbox_head=dict(_delete_=True, type='RetinaHead', "
                      "num_classes=6, in_channels=32, anchor_generator=dict(type='AnchorGenerator', "
                      "octave_base_scale=4, scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32, 64, 128, 256]),"
                      " bbox_coder=dict(type='DeltaXYWHBBoxCoder')))\n")
    _expect_error([str(retina), str(_random_checkpoint(str(retina), tmp_path)), out], "'RetinaHead'", 'SSDHead')


def test_two_stage_needs_opset_16_for_aligned_roi_align(tmp_path):
    model = build_detector('faster_rcnn')
    with pytest.raises(ExportError, match='opset 13 .*RoIAlign.*>= 16'):
        export_onnx(model, str(tmp_path / 'f.onnx'), (128, 128), opset=13)
    assert not osp.exists(tmp_path / 'f.onnx')


def _random_checkpoint(config, tmp_path):
    from mmdet_adasap.apis import build_detector as build_from_config
    model, _ = build_from_config(load_config(config))
    path = tmp_path / 'random.pth'
    torch.save({'state_dict': copy.deepcopy(model.state_dict()), 'meta': {}}, path)
    return path

