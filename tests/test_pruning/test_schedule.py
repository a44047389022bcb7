import pytest

from mmdet_adasap.pruning import build_schedule


def test_one_shot_is_one_step_to_the_final_ratio():
    s = build_schedule(dict(type='one_shot', start=5), ratio=0.4)
    assert s.plan() == [(5, 0.4)]
    assert s.ratio_at(5) == 0.4 and s.ratio_at(4) is None


def test_halp_exponential_decay_of_the_target():
    s = build_schedule(dict(type='exponential', steps=4, interval=10, start=100), ratio=0.25)
    plan = s.plan()
    assert [it for it, _ in plan] == [100, 110, 120, 130]
    ratios = [r for _, r in plan]
    # geometric: equal factor between steps, ending exactly at the final ratio
    assert ratios[-1] == pytest.approx(0.25)
    factors = [ratios[0]] + [b / a for a, b in zip(ratios, ratios[1:])]
    assert factors == pytest.approx([0.25 ** 0.25] * 4)
    assert s.ratio_at(120) == pytest.approx(0.25 ** 0.75) and s.ratio_at(121) is None


@pytest.mark.parametrize('bad', [0, 1, 1.5, -0.2, 'half'])
def test_ratio_outside_unit_interval_is_named(bad):
    with pytest.raises(ValueError, match=repr(bad).replace('.', r'\.')):
        build_schedule(dict(type='one_shot'), ratio=bad)


def test_bad_schedule_options():
    with pytest.raises(ValueError, match="'cosine'"):
        build_schedule(dict(type='cosine'), ratio=0.5)
    with pytest.raises(ValueError, match='steps'):
        build_schedule(dict(type='exponential', steps=0), ratio=0.5)


@pytest.mark.parametrize('ranking', ['global', 'knapsack'])
def test_pruner_owns_its_schedule_and_every_step_lands_on_its_target(fresh_pruner, ranking):
    """``pruner.step(it)`` prunes exactly at the planned iterations (HALP's prune_step) and nowhere else; each
    step meets its intermediate target, the knapsack within a few % of it (no overshoot)."""
    pruner = fresh_pruner('demo')
    pruner.ranking = ranking
    pruner.schedule = build_schedule(dict(type='exponential', steps=3, interval=5, start=2), ratio=0.4)
    landed = []
    for it in range(20):
        kept = pruner.step(it)
        target = pruner.schedule.ratio_at(it)
        assert (kept is None) == (target is None), it
        if kept is not None:
            assert kept == pruner.masks.num_kept() and pruner.cost_ratio() <= target
            landed.append((target, pruner.cost_ratio()))
    assert [t for t, _ in landed] == pytest.approx([0.4 ** (1 / 3), 0.4 ** (2 / 3), 0.4])
    if ranking == 'knapsack':
        assert all(r > t - 0.02 for t, r in landed), landed
