"""The parity check judges: it fails, naming what differs, on deliberately perturbed exports (a weight edited
in the ONNX file; the graph's NMS threshold edited), passes on the honest file, and is not fooled either way by
tied scores (hand-built kept sets against the rules, and mmdet's own initialisation of SSDLite, whose scores
are all near-equal)."""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mmdet_adasap.deploy import check_parity, export_onnx
from mmdet_adasap.deploy.kept_sets import Detections, judge_kept
from mmdet_adasap.deploy.parity import TOLERANCE, compare_pre_nms
from conftest import run_tool
from helpers import load_tool
from pruning_fixtures import REPO, build_detector

export_tool = load_tool('export_onnx')

DEMO = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
POST = dict(iou_threshold=0.5, score_thr=0.02, max_per_img=100)



def _edited_copy(src: str, dst: str, edit) -> str:
    model = onnx.load(src)
    edit(model)
    onnx.save(model, dst)
    return dst


def _scale_first_conv_weight(model, factor=1.01):
    conv = next(n for n in model.graph.node if n.op_type == 'Conv')
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * factor).astype(np.float32), init.name))


def _set_nms_iou_threshold(model, value):
    name = next(n for n in model.graph.node if n.op_type == 'NonMaxSuppression').input[3]
    tensor = numpy_helper.from_array(np.array([value], dtype=np.float32), name)
    for init in model.graph.initializer:
        if init.name == name:
            return init.CopyFrom(tensor)
    const = next(n for n in model.graph.node if n.op_type == 'Constant' and n.output[0] == name)
    const.attribute[0].t.CopyFrom(tensor)


def test_tool_passes_the_honest_export_and_exits_1_naming_an_edited_weight(tmp_path):
    model = build_detector('demo')
    ckpt = str(tmp_path / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tmp_path / 'demo.onnx')
    assert export_tool.main([DEMO, ckpt, out, '--input-size', '128']) == 0
    bad = _edited_copy(out, str(tmp_path / 'edited.onnx'), _scale_first_conv_weight)
    honest = run_tool('tools/export_onnx.py', DEMO, ckpt, out, '--check-only')
    assert honest.returncode == 0 and 'matched' in honest.stdout, honest.stderr[-2000:]
    edited = run_tool('tools/export_onnx.py', DEMO, ckpt, bad, '--check-only')
    assert edited.returncode == 1, edited.stdout[-2000:]
    msg = edited.stderr
    assert 'differs from PyTorch beyond tolerance' in msg and "pre-NMS 'scores' differs by" in msg, msg[-2000:]
    assert "pre-NMS 'boxes' differs by" in msg and 'tolerance 1e-04' in msg, msg[-2000:]


def test_parity_fails_naming_overlapping_kept_boxes_when_the_graph_nms_threshold_is_edited(tmp_path):
    model = build_detector('demo')
    out = str(tmp_path / 'demo.onnx')
    export_onnx(model, out, (128, 128), batch=1)
    assert check_parity(model, out, batch=1, threads=1).ok
    bad = _edited_copy(out, str(tmp_path / 'loose_nms.onnx'), lambda m: _set_nms_iou_threshold(m, 0.95))
    report = check_parity(model, bad, batch=1, threads=1)
    assert not report.ok and max(report.pre_nms.values()) < 1e-5  # the network is untouched: NMS differs
    assert any('overlapping with IoU' in f and 'the NMS threshold 0.45' in f for f in report.failures), \
        report.failures


def test_mmdet_initialised_ssdlite_ties_everywhere_and_passes(tmp_path):
    """mmdet's own initialisation: every score is ~1/21, equal to 1e-8, so the two runtimes' NMS keep different
    boxes (the comparison by order saw 'max |dbox| 2.98e+02 px ... unmatched 54'); only ties decide them."""
    from mmdet_adasap.apis import build_detector as build_from_config
    from mmdet_adasap.apis import load_config
    model, _ = build_from_config(load_config(osp.join(REPO, 'configs/ssd/ssdlite-mbv2_voc0712_dense.py')))
    out = str(tmp_path / 'ssdlite.onnx')
    export_onnx(model, out, (320, 320), batch=1)
    report = check_parity(model, out, batch=1, threads=1)
    assert report.ok, report.failures
    assert report.tie_explained > 0 and report.matched < report.detections, report.summary()


# ------------------------------------------------------------------------------------------ the rules
def _dets(rows):
    """rows of (x1, y1, x2, y2, score, label)."""
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return Detections.of(a[:, :4], a[:, 4], a[:, 5])


def _judge(ref, got, cuts=(), candidates=None):
    return judge_kept(_dets(ref), _dets(got), POST, 100, TOLERANCE, cuts, candidates)


def test_kept_sets_a_tie_may_go_either_way_a_clear_winner_may_not():
    a, b = [0, 0, 40, 40], [4, 0, 44, 40]  # IoU 0.82: one suppresses the other
    far = [60, 60, 90, 90, .3, 0]
    tied = _judge([a + [.5, 0], far], [b + [.5 + 1e-6, 0], far])
    assert not tied['failures'] and tied['matched'] == 1 and tied['tie_explained'] == 2
    clear = _judge([a + [.6, 0], far], [b + [.5, 0], far])
    assert len(clear['failures']) == 2 and 'PyTorch kept class 0 score 0.6' in clear['failures'][0]
    assert 'ONNX Runtime kept class 0 score 0.5' in clear['failures'][1]


def test_kept_sets_a_tie_upstream_explains_what_it_suppressed():
    """A ~ B tie (IoU 0.67); B suppresses C (IoU 0.6) but A does not (IoU 0.38): keeping A lets C survive."""
    a, b, c = [0, 0, 40, 40, .5, 0], [8, 0, 48, 40, .5 + 1e-6, 0], [18, 0, 58, 40, .4, 0]
    assert not _judge([a, c], [b])['failures']
    lone = _judge([a, c], [a])  # without the tie, C's absence is unexplained
    assert len(lone['failures']) == 1 and 'score 0.4' in lone['failures'][0]


def test_kept_sets_cut_offs_and_numeric_differences():
    d = [0, 0, 40, 40, .5, 0]
    assert not _judge([d, [50, 50, 90, 90, .0201, 1]], [d])['failures']  # at score_thr
    assert _judge([d, [50, 50, 90, 90, .0205, 1]], [d])['failures']  # above it by more than the tie window
    assert not _judge([d, [50, 50, 90, 90, .3, 1]], [d], cuts=[.3 + 1e-5])['failures']  # at a level's nms_pre cut
    # 0.2 px > 1e-4 of 100 px: no partner, and no candidate (a tie with itself is no tie)
    off = _judge([d], [[0, 0, 40, 40.2, .5, 0]], candidates=(np.array([d[:4]]), np.array([[.5]])))
    assert len(off['failures']) == 1 and "none of PyTorch's pre-NMS candidates (nearest box 0.2 px" in \
        off['failures'][0], off['failures']
    relabel = _judge([d], [[0, 0, 40, 40, .5 + 1e-6, 3]])  # a prior's best class tied
    assert not relabel['failures'] and relabel['tie_explained'] == 2


def test_pre_nms_names_tensor_position_and_tolerance():
    ref = dict(boxes=np.zeros((1, 3, 4)), scores=np.full((1, 3, 2), .5))
    got = dict(boxes=np.zeros((1, 3, 4)), scores=np.full((1, 3, 2), .5))
    got['boxes'][0, 2, 1] = 0.02  # 2e-4 of a 100 px side
    got['scores'][0, 1, 0] += 5e-5  # within 1e-4
    worst, failures = compare_pre_nms(ref, got, 100)
    assert worst == pytest.approx(dict(boxes=2e-4, scores=5e-5))
    assert failures == ["pre-NMS 'boxes' differs by 2.00e-04 of max(input side, |box coordinates|) (0.02 px) at image 0, "
                        'prior 2, coordinate 1: PyTorch 0, ONNX Runtime 0.02; tolerance 1e-04']
    ref['boxes'][0, 0, 0], got['boxes'][0, 0, 1] = 1e5, 5  # 5e-5 of the box's largest coordinate: within
    got['boxes'][0, 0, 0] = 1e5
    assert compare_pre_nms(ref, got, 100)[0]['boxes'] == pytest.approx(2e-4)
