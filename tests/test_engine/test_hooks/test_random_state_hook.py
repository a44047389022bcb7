"""RandomStateHook's warnings about what a resume cannot repeat (persistent dataloader workers, a seed drawn
afresh): only where a run is resumed, never on a run that starts fresh or from ``load_from`` weights."""
import random
import warnings
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from mmdet_adasap.engine.hooks.random_state_hook import STATE_KEY, RandomStateHook, capture


def _runner(persistent: bool, iteration: int, seed=7):
    loader = SimpleNamespace(num_workers=2, persistent_workers=persistent, worker_init_fn=None)
    cfg = Config(dict(randomness=dict(seed=seed)))
    return SimpleNamespace(train_dataloader=loader, iter=iteration, epoch=1, train_loop=object(), cfg=cfg)


def _warnings(hook, runner, about='persistent dataloader workers'):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        hook.before_train_epoch(runner)
    return [str(w.message) for w in caught if about in str(w.message)]


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


def test_a_resume_without_a_seed_warns_naming_the_setting():
    checkpoint = {STATE_KEY: dict(iter=150, ranks=[capture()])}
    about = 'no randomness.seed'
    fresh = RandomStateHook()
    assert _warnings(fresh, _runner(False, 0, seed=None), about) == [], 'a fresh run has nothing to repeat'
    for seed, expected in ((None, 1), (7, 0)):
        resumed = RandomStateHook()
        resumed.after_load_checkpoint(None, checkpoint)
        found = _warnings(resumed, _runner(False, 150, seed=seed), about)
        assert len(found) == expected and all('randomness.seed=' in m for m in found)
