"""A COCO-format robustness run on 2 CPU processes (gloo, ``tools/dist_launch.sh test_robustness.py 2``, the
launcher ``tools/dist_test.sh`` uses) equals a single-process run: every CocoMetric key of every set, and
P / mPC / rPC. The VOC counterpart is tests/test_tools/test_pruned_multiprocess.py; this one takes the COCO
config users copy (configs/demo/ssd-r18mini_synthcoco_dense.py), pointed at the tiny set converted to COCO json,
and the committed demo dense start (it detects, so the numbers compared are not all zero)."""
import json
import os.path as osp

from conftest import REPO
from test_tools.test_pruned_multiprocess import _run

from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.voc_coco import voc_to_coco

CKPT = 'docs/results/demo/dense_start.pth'
DERIVED = """_base_ = {base!r}
test_dataloader = dict(batch_size=3, num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={root!r}, ann_file={ann!r}, data_prefix=dict(img='')))
test_evaluator = dict(ann_file={ann!r})
"""


def _sets(out):
    with open(osp.join(out, 'robustness.json')) as f:
        res = json.load(f)
    sets = {'clean': res['clean']['metrics']}
    sets.update({f'{c}/{s}': v['metrics'] for c, by in res['corrupted'].items() for s, v in by.items()})
    return res['summary'], sets


def test_two_process_coco_robustness_equals_one(tiny_voc, tmp_path):
    ann = str(tmp_path / 'instances_test.json')
    voc_to_coco(tiny_voc, ann, 'test', ['VOC2007'])  # 6 images: 3 per rank, no padding
    config = tmp_path / 'coco_tiny.py'
    config.write_text(DERIVED.format(base=osp.join(REPO, 'configs/demo/ssd-r18mini_synthcoco_dense.py'),
                                     root=tiny_voc + '/', ann=ann))
    # one process in this one (a tool run costs ~10 s of start-up; the tool passes its options straight through)
    evaluate_robustness(str(config), osp.join(REPO, CKPT), str(tmp_path / 'one'), ['gaussian_noise'], [3],
                        plots=False, label='dense_start')
    args = [str(config), CKPT, '--corruptions', 'gaussian_noise', '--severities', '3', '--no-plots']
    rc, two = _run(['bash', 'tools/dist_launch.sh', 'test_robustness.py', '2', *args, '--out', str(tmp_path / 'two')],
                   port_offset=5)
    assert rc == 0, two[-3000:]
    (s1, sets1), (s2, sets2) = _sets(str(tmp_path / 'one')), _sets(str(tmp_path / 'two'))
    assert sets1 == sets2 and s1 == s2
    assert s1['metric_key'] == 'coco/bbox_mAP' and s1['P'] > 0.05 and set(sets1) == {'clean', 'gaussian_noise/3'}
    assert '[coco/bbox_mAP] P' in two
