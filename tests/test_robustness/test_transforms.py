import os.path as osp

import numpy as np
import pytest

from mmdet_adasap.robustness.corruptions import corrupt_image
from mmdet_adasap.robustness.transforms import LoadCorruptedImageFromFile
from mmdet_adasap.robustness.voc_c import load_bgr, render_voc_c, split_image_ids


@pytest.fixture(scope='module')
def cache(tiny_voc, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cache'))
    render_voc_c(tiny_voc, root, ['motion_blur'], [4], show_progress=False)
    return root


def _results(tiny_voc, img_id):
    return {'img_path': osp.join(tiny_voc, 'VOC2007', 'JPEGImages', f'{img_id}.jpg'), 'img_id': img_id}


def test_on_the_fly_equals_cache_equals_corrupt_image(tiny_voc, cache):
    img_id = split_image_ids(tiny_voc, ['VOC2007'], 'test')['VOC2007'][1]
    fly = LoadCorruptedImageFromFile('motion_blur', 4)(_results(tiny_voc, img_id))
    cached = LoadCorruptedImageFromFile('motion_blur', 4, cache_root=cache)(_results(tiny_voc, img_id))
    expected = corrupt_image(load_bgr(_results(tiny_voc, img_id)['img_path']), 'motion_blur', 4, img_id)
    np.testing.assert_array_equal(fly['img'], expected)
    np.testing.assert_array_equal(cached['img'], expected)
    assert cached['img_path'] == _results(tiny_voc, img_id)['img_path']  # annotations still map to the source
    assert fly['ori_shape'] == expected.shape[:2]  # native resolution: corrupted before any resize
    as_float = LoadCorruptedImageFromFile('motion_blur', 4, to_float32=True)(_results(tiny_voc, img_id))
    assert as_float['img'].dtype == np.float32
    np.testing.assert_array_equal(as_float['img'], expected.astype(np.float32))


def test_registered_and_buildable_from_config(cache):
    from mmdet.registry import TRANSFORMS
    t = TRANSFORMS.build(dict(type='LoadCorruptedImageFromFile', corruption='fog', severity=2, cache_root=cache))
    assert isinstance(t, LoadCorruptedImageFromFile) and t.seed == 0 and t.format == 'png'


def test_bad_input(tiny_voc, cache, tmp_path):
    with pytest.raises(ValueError, match="'smog'"):
        LoadCorruptedImageFromFile('smog', 1)
    with pytest.raises(ValueError, match='severity 7'):
        LoadCorruptedImageFromFile('fog', 7)
    with pytest.raises(ValueError, match='expected one corruption name'):
        LoadCorruptedImageFromFile('noise', 1)
    with pytest.raises(ValueError, match='seed=5 differs'):
        LoadCorruptedImageFromFile('motion_blur', 4, cache_root=cache, seed=5)
    with pytest.raises(FileNotFoundError, match='not a VOC-C cache'):
        LoadCorruptedImageFromFile('fog', 1, cache_root=str(tmp_path))
    img_id = split_image_ids(tiny_voc, ['VOC2007'], 'test')['VOC2007'][0]
    with pytest.raises(FileNotFoundError, match='the fog s1 copy of'):  # set not rendered in this cache
        LoadCorruptedImageFromFile('fog', 1, cache_root=cache)(_results(tiny_voc, img_id))
    with pytest.raises(ValueError, match='is not under'):
        LoadCorruptedImageFromFile('motion_blur', 4, cache_root=cache)({'img_path': __file__, 'img_id': 'x'})
