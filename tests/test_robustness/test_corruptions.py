import numpy as np
import pytest

from mmdet_adasap.robustness.corruptions import (ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_GROUPS,
                                                 HOLDOUT_CORRUPTIONS, check_severities, corrupt_image,
                                                 corruption_group, corruption_seed, resolve_corruptions)


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(0)
    img = np.zeros((48, 64, 3), np.uint8)
    img[:] = rng.integers(40, 200, 3)
    img[10:30, 15:45] = rng.integers(0, 256, (20, 30, 3))  # structure so blurs and warps change pixels
    return img


def test_catalogue_matches_the_library():
    from imagecorruptions import get_corruption_names
    assert list(BENCHMARK_CORRUPTIONS) == get_corruption_names('common')
    assert list(HOLDOUT_CORRUPTIONS) == get_corruption_names('validation')
    for group, members in CORRUPTION_GROUPS.items():
        assert list(members) == get_corruption_names(group)
    assert len(ALL_CORRUPTIONS) == 19 and len(set(ALL_CORRUPTIONS)) == 19


@pytest.mark.parametrize('corruption', ALL_CORRUPTIONS)
def test_every_corruption_at_severity_1_and_5(image, corruption):
    before = image.copy()
    outs = {}
    for severity in (1, 5):
        out = corrupt_image(image, corruption, severity, 'img-7')
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.any(out != image), f'{corruption} s{severity} changed nothing'
        again = corrupt_image(image, corruption, severity, 'img-7')
        np.testing.assert_array_equal(out, again)  # deterministic per (image, corruption, severity)
        outs[severity] = out
    np.testing.assert_array_equal(image, before)  # input untouched
    assert np.any(outs[1] != outs[5])


@pytest.mark.parametrize('corruption', ['gaussian_noise', 'impulse_noise', 'glass_blur', 'frost', 'motion_blur'])
def test_seed_depends_on_image_key_and_leaves_global_rng_alone(image, corruption):
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    a = corrupt_image(image, corruption, 3, 'img-1')
    assert np.random.random() == expected_next  # caller's global RNG stream is unchanged
    b = corrupt_image(image, corruption, 3, 'img-2')
    assert np.any(a != b)
    assert np.any(a != corrupt_image(image, corruption, 3, 'img-1', base_seed=1))


def test_seed_is_stable_across_processes():
    # a digest, not Python's salted hash(): pinned value must not change between runs
    import hashlib
    digest = hashlib.sha256(b'0/000001/fog/3').digest()[:4]
    assert corruption_seed('000001', 'fog', 3) == int.from_bytes(digest, 'little')


def test_resolve_selections():
    assert resolve_corruptions('benchmark') == list(BENCHMARK_CORRUPTIONS)
    assert resolve_corruptions('all') == list(ALL_CORRUPTIONS)
    assert resolve_corruptions(['fog', 'noise', 'gaussian_noise']) == ['gaussian_noise', 'shot_noise',
                                                                        'impulse_noise', 'fog']
    assert resolve_corruptions('holdout') == ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate']
    assert corruption_group('spatter') == 'weather' and corruption_group('pixelate') == 'digital'


def test_bad_input_is_named(image):
    with pytest.raises(ValueError, match="'gausian_noise'"):
        resolve_corruptions(['gausian_noise'])
    with pytest.raises(ValueError, match="'rain'"):
        corrupt_image(image, 'rain', 1, 'x')
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match='outside 1..5'):
            check_severities([1, bad])
    with pytest.raises(ValueError, match='outside 1..5'):
        corrupt_image(image, 'fog', 6, 'x')
    with pytest.raises(ValueError, match='smaller than the 32 px'):
        corrupt_image(image[:20], 'fog', 1, 'tiny')
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        corrupt_image(image.astype(np.float32), 'fog', 1, 'float')
