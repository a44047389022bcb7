"""The parity check judges: it fails, naming what differs, on deliberately perturbed exports (a weight edited
in the ONNX file; the graph's NMS threshold edited), passes on the honest file, and is not fooled either way by
tied scores (hand-built kept sets against the rules, and mmdet's own initialisation of SSDLite, whose scores
are all near-equal). It runs real images of the config's test dataset where they are on disk, so that a trained
model's NMS is exercised, says when it fell back to random ones and when no kept detection was compared, and
counts equal infinities / NaNs as equal."""
import os.path as osp
import re

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mmdet_adasap.deploy import check_parity, export_onnx
from mmdet_adasap.deploy.kept_sets import Detections, judge_kept
from mmdet_adasap.deploy.parity import TOLERANCE, ParityReport, abs_diff, compare_pre_nms
from conftest import run_tool
from helpers import load_tool
from pruning_fixtures import REPO, build_detector

export_tool = load_tool('export_onnx')

DEMO = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
PRUNED = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')
DENSE_START = osp.join(REPO, 'docs/results/demo/dense_start.pth')
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


# ------------------------------------------------------------------------------- non-finite values
def test_equal_infinities_and_nans_are_equal_a_real_difference_is_not():
    same = np.array([-np.inf, np.inf, np.nan, 0.25])
    assert abs_diff(same, same.copy()).tolist() == [0, 0, 0, 0]
    assert abs_diff([-np.inf, np.nan, 1.0, np.inf], [np.inf, 1.0, 1.5, 2.0]).tolist() == [np.inf, np.inf, .5, np.inf]
    # the pre-NMS stage: a diverged model's -inf in both runtimes is no difference (inf - inf is NaN, not 0)
    scores = np.array([[[-np.inf, np.inf], [np.nan, .5]]])
    worst, failures = compare_pre_nms(dict(scores=scores), dict(scores=scores.copy()), 100)
    assert worst == dict(scores=0.0) and not failures
    for ref, got in ((-np.inf, np.inf), (np.nan, 1.0), (1.0, 1.5)):
        a, b = scores.copy(), scores.copy()
        a[0, 1, 1], b[0, 1, 1] = ref, got
        worst, failures = compare_pre_nms(dict(scores=a), dict(scores=b), 100)
        assert len(failures) == 1 and 'at image 0, prior 1, class 1' in failures[0], (ref, got, failures)
    # boxes: an infinite coordinate equal in both does not make its box's other coordinates relative to inf
    boxes = np.array([[[0, -np.inf, 40, 40]]])
    moved = boxes.copy()
    moved[0, 0, 2] += .02  # 2e-4 of the 100 px side
    assert not compare_pre_nms(dict(boxes=boxes), dict(boxes=boxes.copy()), 100)[1]
    assert compare_pre_nms(dict(boxes=boxes), dict(boxes=moved), 100)[0]['boxes'] == pytest.approx(2e-4)
    # the kept stage: identical detections with an infinite box pair up
    inf_box = [0, -np.inf, 40, np.inf, .5, 0]
    kept = _judge([inf_box], [inf_box])
    assert kept['matched'] == 1 and not kept['failures'], kept


# ------------------------------------------------------------------------------------------ the verdict
def test_verdict_says_when_no_kept_detection_was_compared():
    empty = ParityReport(side=256, tolerance=TOLERANCE, pre_nms=dict(boxes=1e-7, scores=1e-7),
                         images='2 random images (seed 0; no config given to load real ones from)')
    assert empty.verdict() == ('PASS, but 0 kept detections compared: NMS not exercised (no score above score_thr '
                               'on these images)')
    assert empty.summary().startswith('2 random images (seed 0; ') and 'kept: 0/0 matched' in empty.summary()
    failed = ParityReport(side=256, tolerance=TOLERANCE, failures=['pre-NMS ...'])
    assert failed.verdict() == 'FAIL (1 differences beyond tolerance); PyTorch kept 0 detections on these images'
    checked = ParityReport(side=256, tolerance=TOLERANCE, detections=5, matched=4, tie_explained=2)
    assert checked.verdict() == 'PASS: 4/5 kept detections matched, 2 decided by ties'


# ------------------------------------------------------------------------------- real images vs random
@pytest.fixture(scope='module')
def pruned_demo(tmp_path_factory):
    """The committed trained dense start pruned one-shot to half its FLOPs (no fine-tune): on random pixels
    no score passes score_thr ('kept: 0/0 matched'), on the data it detects."""
    from mmdet_adasap.apis import build_detector as build_from_config
    from mmdet_adasap.apis import load_config
    from mmdet_adasap.pruning import ChannelPruner, save_pruned_checkpoint
    model, _ = build_from_config(load_config(DEMO), DENSE_START)
    pruner = ChannelPruner(model, (1, 3, 256, 256), target=dict(type='flops', ratio=0.5), round_to=8)
    pruner.prune_one_shot()
    pruned, record = pruner.export_with_config()
    return save_pruned_checkpoint(str(tmp_path_factory.mktemp('pruned') / 'pruned.pth'), pruned, record)


def _config_with_data_root(folder, data_root) -> str:
    path = folder / f'pruned_{len(list(folder.glob("*.py")))}.py'
    path.write_text(f"_base_ = '{PRUNED}'\ntest_dataloader = dict(dataset=dict(data_root='{data_root}'))\n")
    return str(path)


def test_tool_checks_real_test_images_so_nms_runs_and_says_when_it_fell_back_to_random(tmp_path, tiny_voc,
                                                                                        pruned_demo, capsys):
    real_cfg = _config_with_data_root(tmp_path, tiny_voc + '/')
    out = str(tmp_path / 'pruned.onnx')
    assert export_tool.main([real_cfg, pruned_demo, out, '--check-images', '2']) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith('PyTorch vs ONNX Runtime on '))
    assert line.startswith('PyTorch vs ONNX Runtime on 2 real images from the test_dataloader dataset (ann_file '
                           f"'VOC2007/ImageSets/Main/test.txt' under data_root '{tiny_voc}/'; images "), line
    matched, kept = map(int, re.search(r'kept: (\d+)/(\d+) matched', line).groups())
    assert 0 < matched == kept, line
    assert f'parity: PASS: {matched}/{kept} kept detections matched' in printed, printed

    nowhere = str(tmp_path / 'no_such_data')
    random_cfg = _config_with_data_root(tmp_path, nowhere)
    assert export_tool.main([random_cfg, pruned_demo, out, '--check-only']) == 0
    printed = capsys.readouterr().out
    assert (f"PyTorch vs ONNX Runtime on 2 random images (seed 0; test_dataloader.dataset data_root '{nowhere}' "
            'not found): ') in printed, printed
    assert 'kept: 0/0 matched' in printed and 'parity: PASS, but 0 kept detections compared: NMS not exercised' \
        in printed, printed
