import hashlib
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mmdet_adasap.datasets import SYNTHETIC_VOC_CLASSES, SyntheticVOCSpec, make_synthetic_voc
from mmdet_adasap.datasets.synthetic_voc import render_image

SMALL = dict(trainval={'VOC2007': 6, 'VOC2012': 4}, test={'VOC2007': 4, 'VOC2012': 2}, min_side=96, max_side=128)


def _digest(devkit):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(devkit)):
        for f in sorted(files):
            h.update(osp.relpath(osp.join(root, f), devkit).encode())
            with open(osp.join(root, f), 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_layout_is_pascal_voc(tiny_voc):
    for year in ('VOC2007', 'VOC2012'):
        main = osp.join(tiny_voc, year, 'ImageSets', 'Main')
        splits = {s: open(osp.join(main, f'{s}.txt')).read().split() for s in ('train', 'val', 'trainval', 'test')}
        assert sorted(splits['train'] + splits['val']) == sorted(splits['trainval'])
        assert not set(splits['trainval']) & set(splits['test'])
        for img_id in splits['trainval'] + splits['test']:
            assert osp.isfile(osp.join(tiny_voc, year, 'JPEGImages', f'{img_id}.jpg'))
            root = ET.parse(osp.join(tiny_voc, year, 'Annotations', f'{img_id}.xml')).getroot()
            w, h = int(root.findtext('size/width')), int(root.findtext('size/height'))
            for obj in root.findall('object'):
                assert obj.findtext('name') in SYNTHETIC_VOC_CLASSES
                assert obj.findtext('difficult') in ('0', '1') and obj.findtext('truncated') in ('0', '1')
                x0, y0, x1, y1 = (int(obj.findtext(f'bndbox/{k}')) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                assert 1 <= x0 <= x1 <= w and 1 <= y0 <= y1 <= h  # VOC boxes are 1-based, inclusive


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path):
    a = make_synthetic_voc(str(tmp_path / 'a'), SyntheticVOCSpec(**SMALL, seed=1), show_progress=False)
    b = make_synthetic_voc(str(tmp_path / 'b'), SyntheticVOCSpec(**SMALL, seed=1), workers=2, show_progress=False)
    c = make_synthetic_voc(str(tmp_path / 'c'), SyntheticVOCSpec(**SMALL, seed=2), show_progress=False)
    assert _digest(a) == _digest(b)  # also: worker count does not change the content
    assert _digest(a) != _digest(c)


def test_content_is_varied_enough_to_be_a_detection_problem():
    rng_objects = [render_image(np.random.default_rng([7, i]), SyntheticVOCSpec())[1] for i in range(300)]
    objects = [o for objs in rng_objects for o in objs]
    names = {o.name for o in objects}
    assert names == set(SYNTHETIC_VOC_CLASSES)
    sides = np.array([min(o.bbox[2] - o.bbox[0], o.bbox[3] - o.bbox[1]) + 1 for o in objects])
    assert sides.min() < 16 and sides.max() > 120, 'small and large objects'
    assert 0.02 < np.mean([o.difficult for o in objects]) < 0.3
    assert np.mean([o.truncated for o in objects]) > 0.03
    assert np.mean([len(objs) >= 3 for objs in rng_objects]) > 0.3, 'crowded images'


def test_refuses_to_overwrite_unless_asked(tmp_path):
    spec = SyntheticVOCSpec(**SMALL)
    devkit = make_synthetic_voc(str(tmp_path), spec, show_progress=False)
    marker = osp.join(devkit, 'keep.txt')
    open(marker, 'w').close()
    with pytest.raises(FileExistsError, match='VOCdevkit'):
        make_synthetic_voc(str(tmp_path), spec, show_progress=False)
    assert osp.exists(marker)
    make_synthetic_voc(str(tmp_path), spec, overwrite=True, show_progress=False)
    assert not osp.exists(marker)
    assert [p for p in os.listdir(tmp_path) if p.startswith('.VOCdevkit-partial')] == []


@pytest.mark.parametrize('bad', [dict(trainval={'VOC2010': 3}), dict(test={'VOC2007': -1}),
                                 dict(min_side=10), dict(max_objects=0)])
def test_bad_spec_is_rejected(bad):
    with pytest.raises(ValueError):
        SyntheticVOCSpec(**bad)
