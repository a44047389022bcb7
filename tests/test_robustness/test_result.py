"""The aggregates against an independent computation (numpy over a hand-made mAP grid)."""
import numpy as np
import pytest

from mmdet_adasap.robustness.result import RESULT_SCHEMA, build_result, check_comparable, check_grid, summarize

CLASSES = ('a', 'b', 'c')
# rows: corruptions, columns: severities 1, 3, 5 (hand-made, uneven on purpose)
GRID = {
    'gaussian_noise': [0.60, 0.40, 0.10],
    'shot_noise': [0.62, 0.35, 0.12],
    'motion_blur': [0.70, 0.50, 0.30],
    'fog': [0.75, 0.70, 0.60],
    'pixelate': [0.72, 0.41, 0.20],
    'spatter': [0.50, 0.45, 0.40],  # holdout: must stay out of mPC
}
SEVERITIES = (1, 3, 5)
CLEAN = 0.8


def _per_class(map_value, k):
    # class 'c' has no ground truth anywhere (None); a and b average to the set's mAP
    return {'a': map_value + 0.05 * k, 'b': map_value - 0.05 * k, 'c': None}


def _tables():
    clean = {'mAP': CLEAN, 'per_class': _per_class(CLEAN, 1)}
    corrupted = {c: {str(s): {'mAP': v, 'per_class': _per_class(v, i % 3)} for s, v in zip(SEVERITIES, vals)}
                 for i, (c, vals) in enumerate(GRID.items())}
    return clean, corrupted


def test_summary_against_numpy():
    s = summarize(*_tables())
    bench = ['gaussian_noise', 'shot_noise', 'motion_blur', 'fog', 'pixelate']
    m = np.array([GRID[c] for c in bench])
    assert s['P'] == CLEAN
    assert s['mPC'] == pytest.approx(m.mean())
    assert s['rPC'] == pytest.approx(m.mean() / CLEAN)
    assert s['mPC_holdout'] == pytest.approx(np.mean(GRID['spatter']))
    assert s['rPC_holdout'] == pytest.approx(np.mean(GRID['spatter']) / CLEAN)
    assert s['benchmark_corruptions'] == bench and s['holdout_corruptions'] == ['spatter']
    assert s['complete_benchmark'] is False
    for i, sev in enumerate(SEVERITIES):
        assert s['per_severity'][str(sev)] == pytest.approx(m[:, i].mean())
    assert s['per_category'] == pytest.approx({
        'noise': np.mean(GRID['gaussian_noise'] + GRID['shot_noise']),
        'blur': np.mean(GRID['motion_blur']), 'weather': np.mean(GRID['fog']), 'digital': np.mean(GRID['pixelate'])})
    for c in GRID:
        assert s['per_corruption'][c]['mean'] == pytest.approx(np.mean(GRID[c]))
    assert s['per_corruption']['spatter']['holdout'] and s['per_corruption']['spatter']['group'] == 'weather'
    # per class: the mean over benchmark sets of that class's AP; a class without ground truth stays None
    k = np.array([i % 3 for i, c in enumerate(GRID) if c in bench])[:, None]
    assert s['per_class']['a']['mPC'] == pytest.approx((m + 0.05 * k).mean())
    assert s['per_class']['b']['mPC'] == pytest.approx((m - 0.05 * k).mean())
    assert s['per_class']['a']['P'] == pytest.approx(CLEAN + 0.05)
    assert s['per_class']['a']['rPC'] == pytest.approx((m + 0.05 * k).mean() / (CLEAN + 0.05))
    assert s['per_class']['c'] == {'P': None, 'mPC': None, 'rPC': None}


def test_full_benchmark_is_flagged_complete():
    from mmdet_adasap.robustness.corruptions import BENCHMARK_CORRUPTIONS
    clean = {'mAP': 0.5, 'per_class': {'a': 0.5}}
    corrupted = {c: {str(s): {'mAP': 0.1 * s, 'per_class': {'a': 0.1 * s}} for s in range(1, 6)}
                 for c in BENCHMARK_CORRUPTIONS}
    s = summarize(clean, corrupted)
    assert s['complete_benchmark'] is True
    assert s['mPC'] == pytest.approx(0.3) and s['rPC'] == pytest.approx(0.6)
    assert s['mPC_holdout'] is None


def test_ragged_grid_and_unknown_names_are_errors():
    clean, corrupted = _tables()
    del corrupted['fog']['3']
    with pytest.raises(ValueError, match="'fog'.*severities \\[1, 5\\]"):
        summarize(clean, corrupted)
    with pytest.raises(ValueError, match="'rain'"):
        check_grid({'rain': {'1': {}}})


def _meta(classes=CLASSES, ids='abc', mode='11points'):
    return {'dataset': {'classes': list(classes), 'image_ids_sha256': ids, 'num_images': 10},
            'protocol': {'eval_mode': mode, 'iou_thr': 0.5}}


def test_check_comparable():
    check_comparable([_meta(), _meta()], ['x.json', 'y.json'])
    with pytest.raises(ValueError, match=r"y.json was evaluated with dataset.classes=\['a', 'b'\]"):
        check_comparable([_meta(), _meta(classes=('a', 'b'))], ['x.json', 'y.json'])
    with pytest.raises(ValueError, match='image_ids_sha256'):
        check_comparable([_meta(), _meta(ids='other')], ['x.json', 'y.json'])
    with pytest.raises(ValueError, match='eval_mode'):
        check_comparable([_meta(), _meta(mode='area')], ['x.json', 'y.json'])


def test_check_comparable_same_grid_names_the_result():
    a, b = _meta(), _meta()
    a['summary'] = dict(benchmark_corruptions=['fog'], holdout_corruptions=[], severities=[1, 3])
    b['summary'] = dict(a['summary'], severities=[3])
    check_comparable([a, b], ['x.json', 'y.json'])  # data and AP protocol agree
    with pytest.raises(ValueError, match=r'y.json covers severities=\[3\], but x.json covers \[1, 3\]'):
        check_comparable([a, b], ['x.json', 'y.json'], same_grid=True)


def test_build_result_summarises_the_records_and_drops_nan():
    rec = lambda m, ap: {'mAP': m, 'per_class': {'disc': ap, 'box': float('nan')}}  # noqa: E731
    records = {'clean': rec(0.8, 0.7), 'fog/1': rec(0.5, 0.4), 'fog/3': rec(0.3, 0.2)}
    res = build_result(records, ['fog'], [1, 3], dict(label='m'), _meta()['dataset'], _meta()['protocol'])
    assert res['schema'] == RESULT_SCHEMA and res['clean']['per_class']['box'] is None
    assert res['summary']['mPC'] == pytest.approx(0.4) and res['summary']['rPC'] == pytest.approx(0.5)
    assert res['protocol']['corruption'].startswith('applied to the BGR image')
