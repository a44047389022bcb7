"""Seed statistics against numpy and the paired t interval against a hand computation and scipy's paired test."""
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats as sps

from mmdet_adasap.analysis.stats import format_mean_std, format_paired, paired_difference, summarize_seeds


def test_std_over_seeds_is_numpys_ddof1():
    values = [31.2, 30.7, 31.9, 30.1, 31.4]
    s = summarize_seeds(values)
    assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(np.std(values, ddof=1))
    assert s.n == 5 and summarize_seeds([3.0]).std is None
    assert format_mean_std(asdict(s)) == f'{np.mean(values):.1f} +- {np.std(values, ddof=1):.1f}'
    assert format_mean_std(asdict(summarize_seeds([3.04])), 2) == '3.04' and format_mean_std(None) == '-'


def test_paired_cells_star_only_an_interval_that_excludes_zero():
    wide = paired_difference({1: 1.0, 2: -0.5}, {1: 0.0, 2: 0.0}).to_dict()
    tight = paired_difference({1: 1.0, 2: 1.1, 3: 0.9}, {1: 0.0, 2: 0.0, 3: 0.0}).to_dict()
    one = paired_difference({7: 2.5}, {7: 1.0}).to_dict()
    assert format_paired(wide) == f'+0.25 [{wide["low"]:+.2f}, {wide["high"]:+.2f}]' and wide['low'] < 0
    assert format_paired(tight).endswith(' *') and tight['low'] > 0
    assert format_paired(one) == '+1.50 (n=1)'


def test_paired_interval_by_hand_three_seeds():
    a, b = {1: 31.0, 2: 30.8, 3: 31.6}, {1: 30.2, 2: 30.5, 3: 30.4}
    d = [0.8, 0.3, 1.2]  # a - b per seed
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2} from a printed table (4.303)
    r = paired_difference(a, b)
    assert r.mean == pytest.approx(mean) and r.std == pytest.approx(sd)
    assert (r.low, r.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert r.excludes_zero == (mean - half > 0) and r.seeds == (1, 2, 3)


def test_paired_interval_matches_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    x, y = rng.normal(30, 1, 5), rng.normal(30.5, 1, 5)
    r = paired_difference(dict(enumerate(x)), dict(enumerate(y)), confidence=0.9)
    ci = sps.ttest_rel(x, y).confidence_interval(confidence_level=0.9)
    assert (r.low, r.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_unpaired_seed_and_single_seed():
    with pytest.raises(ValueError, match=r'seed\(s\) \[3\] are on one side only'):
        paired_difference({1: 1.0, 2: 2.0, 3: 0.0}, {1: 1.0, 2: 1.5})
    one = paired_difference({1: 2.0}, {1: 1.5})
    assert one.mean == pytest.approx(0.5) and one.low is None and not one.excludes_zero
    with pytest.raises(ValueError, match='non-finite'):
        summarize_seeds([1.0, float('nan')])
