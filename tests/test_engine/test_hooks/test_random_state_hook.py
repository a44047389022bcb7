"""RandomStateHook's warning about persistent dataloader workers: only where a run is resumed (the only case in
which their random streams matter), never on a run that starts fresh or from ``load_from`` weights."""
import random
import warnings
from types import SimpleNamespace

import pytest

from mmdet_adasap.engine.hooks.random_state_hook import STATE_KEY, RandomStateHook, capture


def _runner(persistent: bool, iteration: int):
    loader = SimpleNamespace(num_workers=2, persistent_workers=persistent, worker_init_fn=None)
    return SimpleNamespace(train_dataloader=loader, iter=iteration, epoch=1, train_loop=object())


def _warnings(hook, runner):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        hook.before_train_epoch(runner)
    return [str(w.message) for w in caught if 'persistent dataloader workers' in str(w.message)]


@pytest.mark.parametrize('persistent', [True, False])
def test_persistent_workers_warn_on_resume_only(persistent):
    random.seed(3)
    saved = capture()
    checkpoint = {STATE_KEY: dict(iter=150, ranks=[saved])}

    fresh = RandomStateHook()
    assert _warnings(fresh, _runner(persistent, 0)) == [], 'a fresh run has nothing to repeat'

    loaded = RandomStateHook()  # load_from: the checkpoint's iteration is not where this run starts
    loaded.after_load_checkpoint(None, checkpoint)
    assert _warnings(loaded, _runner(persistent, 0)) == []

    resumed = RandomStateHook()
    resumed.after_load_checkpoint(None, checkpoint)
    random.seed(4)
    found = _warnings(resumed, _runner(persistent, 150))
    assert len(found) == int(persistent)
    assert all('train_dataloader.persistent_workers=False' in m for m in found)
    assert random.getstate() == saved['python'], 'the resumed run continues from the saved state either way'
