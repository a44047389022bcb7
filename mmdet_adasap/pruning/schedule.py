"""When to prune and to what intermediate target.

* ``one_shot``: a single step to the final ratio (at iteration ``start``).
* ``exponential`` (HALP): ``steps`` steps, one every ``interval`` iterations from ``start``; after step k
  (1..steps) the model keeps ``ratio ** (k / steps)`` of the dense cost, i.e. the cost decays geometrically
  from dense to the final target, removing the same *fraction* of the remaining cost at every step, so early
  steps (when the network is large and redundant) remove more absolute cost than late ones.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from ..utils.checks import check_int
from .targets import check_ratio


@dataclass
class PruningSchedule:
    ratio: float  # final fraction of the dense cost to keep
    kind: str = 'one_shot'
    steps: int = 1
    interval: int = 1
    start: int = 0

    def __post_init__(self):
        check_ratio(self.ratio, 'target ratio')
        if self.kind not in ('one_shot', 'exponential'):
            raise ValueError(f"schedule kind must be 'one_shot' or 'exponential', got {self.kind!r}")
        if self.kind == 'one_shot':
            self.steps = 1
        check_int(self.steps, 'schedule steps')
        check_int(self.interval, 'schedule interval')
        check_int(self.start, 'schedule start', at_least=0)

    def plan(self) -> List[Tuple[int, float]]:
        """[(iteration at which step k fires, ratio kept after it)] for k = 1..steps."""
        return [(self.start + (k - 1) * self.interval, self.ratio ** (k / self.steps))
                for k in range(1, self.steps + 1)]

    def ratio_at(self, iteration: int) -> Optional[float]:
        """The ratio to prune to at ``iteration`` if a step fires there, else None."""
        for it, r in self.plan():
            if it == iteration:
                return r
        return None


def build_schedule(cfg: Union[dict, PruningSchedule], ratio: Optional[float] = None) -> PruningSchedule:
    if isinstance(cfg, PruningSchedule):
        return cfg
    cfg = dict(cfg or {})
    kind = cfg.pop('type', cfg.pop('kind', 'one_shot'))
    if ratio is not None:
        cfg.setdefault('ratio', ratio)
    unknown = set(cfg) - {'ratio', 'steps', 'interval', 'start'}
    if unknown:
        raise ValueError(f'unknown schedule option(s) {sorted(unknown)}')
    return PruningSchedule(kind=kind, **cfg)
