import hashlib
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, run_tool

from mmdet_adasap.robustness.corruptions import corrupt_image
from mmdet_adasap.robustness.voc_c import (cached_image_path, load_bgr, missing_cached_images, read_manifest,
                                           render_voc_c, split_image_ids)

SMALL = dict(corruptions=['gaussian_noise', 'frost'], severities=[1, 5], show_progress=False)


def _digests(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith('.png'):
                with open(osp.join(dirpath, name), 'rb') as f:
                    out[osp.relpath(osp.join(dirpath, name), root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_render_is_complete_deterministic_and_matches_corrupt_image(tiny_voc, tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    summary = render_voc_c(tiny_voc, a, workers=2, **SMALL)
    ids = split_image_ids(tiny_voc, ['VOC2007'], 'test')['VOC2007']
    assert summary['rendered'] == len(ids) * 4 and summary['skipped'] == 0
    render_voc_c(tiny_voc, b, workers=1, **SMALL)
    da, db = _digests(a), _digests(b)
    assert len(da) == len(ids) * 4 and da == db  # same bytes with 1 or 2 workers
    # a cached file is exactly the seeded corruption of the image as the pipeline loads it (lossless png)
    rel = osp.join('VOC2007', 'JPEGImages', f'{ids[0]}.jpg')
    expected = corrupt_image(load_bgr(osp.join(tiny_voc, rel)), 'frost', 5, ids[0])
    np.testing.assert_array_equal(load_bgr(cached_image_path(a, 'frost', 5, rel, 'png')), expected)
    assert read_manifest(a)['source_root'] == osp.realpath(tiny_voc)
    assert missing_cached_images(a, 'frost', 5, [rel]) == []
    assert missing_cached_images(a, 'fog', 5, [rel]) == [cached_image_path(a, 'fog', 5, rel, 'png')]
    again = render_voc_c(tiny_voc, a, workers=1, **SMALL)
    assert again['rendered'] == 0 and again['skipped'] == len(ids) * 4


def test_killed_run_resumes_to_identical_files(tiny_voc, tmp_path):
    out = str(tmp_path / 'killed')
    cmd = [sys.executable, 'tools/make_voc_c.py', tiny_voc, out, '--corruptions', 'noise', 'weather', 'digital',
           '--severities', '1', '3', '5', '--workers', '1']
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n_ids = len(split_image_ids(tiny_voc, ['VOC2007'], 'test')['VOC2007'])
    total = n_ids * 11 * 3
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(_digests(out)) < 10:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partial = _digests(out)
    assert 10 <= len(partial) < total, f'the run was not interrupted midway ({len(partial)} of {total} files)'
    for rel in partial:  # nothing truncated counts as done: every file present decodes
        assert load_bgr(osp.join(out, rel)) is not None
    resumed = run_tool(*cmd[1:])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f'already present {len(partial)}' in resumed.stdout
    fresh = str(tmp_path / 'fresh')
    render_voc_c(tiny_voc, fresh, ['noise', 'weather', 'digital'], [1, 3, 5], show_progress=False)
    assert _digests(out) == _digests(fresh)
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith('.partial')]


def test_jpg_layout_is_a_vocdevkit(tiny_voc, tmp_path):
    out = str(tmp_path / 'jpg')
    render_voc_c(tiny_voc, out, ['fog'], [2], fmt='jpg', jpeg_quality=90, show_progress=False)
    year = osp.join(out, 'fog', '2', 'VOC2007')
    assert sorted(os.listdir(osp.join(year, 'ImageSets', 'Main'))) == sorted(
        os.listdir(osp.join(tiny_voc, 'VOC2007', 'ImageSets', 'Main')))
    ids = split_image_ids(tiny_voc, ['VOC2007'], 'test')['VOC2007']
    assert sorted(os.listdir(osp.join(year, 'JPEGImages'))) == sorted(f'{i}.jpg' for i in ids)
    with pytest.raises(ValueError, match="format='jpg'.*format='png'"):
        render_voc_c(tiny_voc, out, ['fog'], [2], fmt='png', show_progress=False)


def test_bad_input(tiny_voc, tmp_path):
    with pytest.raises(FileNotFoundError, match="split file .*VOC2007/ImageSets/Main/nosuch.txt"):
        render_voc_c(tiny_voc, str(tmp_path / 'x'), ['fog'], [1], split='nosuch', show_progress=False)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        render_voc_c(str(tmp_path / 'nowhere'), str(tmp_path / 'x'), ['fog'], [1], show_progress=False)
    r = run_tool('tools/make_voc_c.py', tiny_voc, str(tmp_path / 'y'), '--corruptions', 'fgo')
    assert r.returncode != 0 and "unknown corruption 'fgo'" in r.stderr
    with pytest.raises(ValueError, match='severity 0 is outside 1..5'):
        render_voc_c(tiny_voc, str(tmp_path / 'y'), ['fog'], [0, 3], show_progress=False)
    with pytest.raises(ValueError, match="format 'tif'"):
        render_voc_c(tiny_voc, str(tmp_path / 'y'), ['fog'], [3], fmt='tif', show_progress=False)
