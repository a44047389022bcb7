"""Statistics for a method comparison over seeds: mean +- std, and paired differences with a 95 % t interval.

Why t and not bootstrap: a matrix has 3-5 seeds per cell; a bootstrap over 3-5 paired differences has only
a handful of distinct resamples and gives intervals that are too narrow, while Student's t interval is exact for
normal differences and the usual choice at this n. Why paired: two methods run with the same seed share the
dense start, the data order and the augmentation, so the difference of a pair removes the seed's own effect
(the spread of the differences is what decides, not the spread of each method).
"""
import math
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

INTERVAL = "Student's t"


@dataclass
class SeedSummary:
    """Mean and sample standard deviation (ddof=1; None for a single seed) over ``n`` seeds."""
    mean: float
    std: Optional[float]
    n: int


@dataclass
class PairedDifference:
    """``a - b`` over the seeds both have: mean, std (ddof=1), the ``confidence`` interval (None when n < 2)."""
    mean: float
    std: Optional[float]
    n: int
    low: Optional[float]
    high: Optional[float]
    confidence: float
    seeds: tuple
    method: str = INTERVAL

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low is not None and (self.low > 0 or self.high < 0))

    def to_dict(self) -> dict:
        return dict(asdict(self), excludes_zero=self.excludes_zero)


def format_mean_std(stat: Optional[dict], digits: int = 1) -> str:
    """A table cell of a :class:`SeedSummary` as stored (``asdict``): ``mean +- std``, the mean alone for one
    seed, ``-`` for no value."""
    if stat is None:
        return '-'
    return f'{stat["mean"]:.{digits}f}' + ('' if stat['std'] is None else f' +- {stat["std"]:.{digits}f}')


def format_paired(d: dict, digits: int = 2) -> str:
    """A table cell of a paired difference as stored (:meth:`PairedDifference.to_dict` or the same keys):
    ``mean [low, high]``, `` *`` when the interval excludes 0, ``(n=1)`` when there is no interval."""
    if d['low'] is None:
        return f'{d["mean"]:+.{digits}f} (n={d["n"]})'
    return (f'{d["mean"]:+.{digits}f} [{d["low"]:+.{digits}f}, {d["high"]:+.{digits}f}]' +
            (' *' if d['excludes_zero'] else ''))


def _finite(values: Sequence[float], what: str) -> list:
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f'{what}: no values')
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f'{what}: non-finite value(s) {bad}')
    return values


def summarize_seeds(values: Sequence[float], what: str = 'values') -> SeedSummary:
    values = _finite(values, what)
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return SeedSummary(mean, std, n)


def t_interval(values: Sequence[float], confidence: float = 0.95, what: str = 'values'
               ) -> Tuple[SeedSummary, Optional[float], Optional[float]]:
    """Mean, std and the two-sided Student's t interval of the mean (mean +- t_{(1+confidence)/2, n-1} * std /
    sqrt(n)); the interval is (None, None) for a single value."""
    from scipy.stats import t  # scipy: optional and heavy, only an interval needs it
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must lie in (0, 1), got {confidence!r}')
    s = summarize_seeds(values, what)
    if s.n < 2:
        return s, None, None
    half = float(t.ppf((1 + confidence) / 2, s.n - 1)) * s.std / math.sqrt(s.n)
    return s, s.mean - half, s.mean + half


def paired_difference(a: Dict[int, float], b: Dict[int, float], confidence: float = 0.95,
                      what: str = 'difference') -> PairedDifference:
    """``a[seed] - b[seed]`` over the common seeds with a two-sided Student's t interval
    (mean +- t_{(1+confidence)/2, n-1} * std / sqrt(n)). A seed only one side has is an error: an unpaired run
    would silently turn the comparison into an unpaired one."""
    only = sorted(set(a) ^ set(b))
    if only:
        raise ValueError(f'{what}: seed(s) {only} are on one side only (a: {sorted(a)}, b: {sorted(b)}); a paired '
                         'difference needs every seed on both sides: finish or drop those runs')
    seeds = tuple(sorted(a))
    s, low, high = t_interval(_finite([a[s] - b[s] for s in seeds], what), confidence, what)
    return PairedDifference(s.mean, s.std, s.n, low, high, confidence, seeds)
