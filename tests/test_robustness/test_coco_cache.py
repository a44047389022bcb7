"""The corrupted-image cache of a COCO-format set (an annotation file + an image folder): the same layout and the
same seeded renders as a VOC-C cache, each image seeded by its COCO image id (the ``img_id`` ``CocoDataset``
gives it, which the on-the-fly transform seeds with). Two images, one random corruption (gaussian_noise, so that
the seed matters): the cached copies equal the on-the-fly render bit for bit, a robustness run reading the cache
equals one rendering on the fly, and a cache of the same images seeded with other ids (the VOC-C cache of the
same files, or another json) is refused, before the clean set is evaluated.
"""
import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, run_tool

from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.transforms import LoadCorruptedImageFromFile
from mmdet_adasap.robustness.voc_c import cached_image_path, load_bgr, read_manifest, render_coco_c, render_voc_c
from mmdet_adasap.robustness.voc_coco import voc_to_coco

CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthcoco_dense.py')
CKPT = osp.join(REPO, 'docs/results/demo/dense_start.pth')
CORRUPTION, SEVERITY = 'gaussian_noise', 3


@pytest.fixture(scope='module')
def coco2(tiny_voc, tmp_path_factory):
    """Two test images of the tiny set as a COCO json (ids 1, 2), and their cache rendered by the tool."""
    tmp = tmp_path_factory.mktemp('coco_cache')
    coco = voc_to_coco(tiny_voc, None, 'test', ['VOC2007'])
    coco['images'] = coco['images'][:2]
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in (1, 2)]
    ann = str(tmp / 'two.json')
    with open(ann, 'w') as f:
        json.dump(coco, f)
    cache = str(tmp / 'cache')
    proc = run_tool('tools/make_voc_c.py', tiny_voc, cache, '--coco-ann', ann, '--corruptions', CORRUPTION,
                    '--severities', str(SEVERITY), '--workers', '1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(tmp=tmp, ann=ann, cache=cache, coco=coco, root=tiny_voc)


def _options(coco2):
    return {'test_dataloader.dataset.data_root': coco2['root'] + '/', 'test_dataloader.dataset.ann_file': coco2['ann'],
            'test_dataloader.dataset.data_prefix.img': '', 'test_evaluator.ann_file': coco2['ann'],
            'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
            'test_dataloader.batch_size': 2}


def test_cache_equals_the_on_the_fly_render_bit_for_bit(coco2):
    manifest = read_manifest(coco2['cache'])
    assert manifest['image_key'] == 'coco_id' and manifest['source_root'] == osp.realpath(coco2['root'])
    with open(osp.join(coco2['cache'], 'image_keys.json')) as f:
        assert json.load(f) == {img['file_name']: str(img['id']) for img in coco2['coco']['images']}
    fly = LoadCorruptedImageFromFile(CORRUPTION, SEVERITY)
    cached = LoadCorruptedImageFromFile(CORRUPTION, SEVERITY, cache_root=coco2['cache'])
    for img in coco2['coco']['images']:
        path = osp.join(coco2['root'], img['file_name'])
        file = cached_image_path(coco2['cache'], CORRUPTION, SEVERITY, img['file_name'], 'png')
        results = dict(img_path=path, img_id=img['id'])  # as CocoDataset gives it: the json's id, an int
        a, b = fly(dict(results))['img'], cached(dict(results))['img']
        assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(load_bgr(file), a)
        assert not np.array_equal(a, load_bgr(path))


def test_robustness_run_from_the_cache_equals_the_on_the_fly_one(coco2):
    runs = {}
    for name, cache in (('fly', None), ('cache', coco2['cache'])):
        runs[name] = evaluate_robustness(CONFIG, CKPT, str(coco2['tmp'] / name), [CORRUPTION], [SEVERITY],
                                         cache_root=cache, plots=False, cfg_options=_options(coco2))
    fly, cached = (runs[k]['corrupted'][CORRUPTION][str(SEVERITY)] for k in ('fly', 'cache'))
    assert (fly['source'], cached['source']) == ('on_the_fly', 'cache:png')
    assert fly['metrics'] == cached['metrics'] and runs['fly']['summary'] == runs['cache']['summary']
    assert runs['cache']['summary']['metric_key'] == 'coco/bbox_mAP'


def test_a_cache_seeded_with_other_ids_is_refused(coco2, tmp_path):
    # the VOC-C cache of the same files: seeded with VOC's ids (the file stems), not the json's
    voc_cache = str(tmp_path / 'voc_c')
    render_voc_c(coco2['root'], voc_cache, [CORRUPTION], [SEVERITY], show_progress=False)
    with pytest.raises(ValueError, match=r"seeded '.*' as '0\d+' \(VOC ids \(file stems\)\), this dataset gives it "
                                         r"img_id '1'.*--coco-ann"):
        evaluate_robustness(CONFIG, CKPT, str(tmp_path / 'out'), [CORRUPTION], [SEVERITY], cache_root=voc_cache,
                            plots=False, cfg_options=_options(coco2))
    assert not osp.exists(tmp_path / 'out' / 'sets' / 'clean.json'), 'refused before the clean set'
    # another json giving the same file another id: refused when rendering into the same cache
    other = dict(coco2['coco'], images=[dict(img, id=img['id'] + 10) for img in coco2['coco']['images']])
    with open(tmp_path / 'other.json', 'w') as f:
        json.dump(other, f)
    with pytest.raises(ValueError, match=r'was rendered into .* as image id 1, this annotation file gives it id 11'):
        render_coco_c(str(tmp_path / 'other.json'), coco2['root'], coco2['cache'], [CORRUPTION], [SEVERITY],
                      show_progress=False)
    # a VOC render into a COCO cache (or the reverse): refused by the manifest
    with pytest.raises(ValueError, match="image_key='coco_id', this run asks for image_key='voc_id'"):
        render_voc_c(coco2['root'], coco2['cache'], [CORRUPTION], [SEVERITY], show_progress=False)
