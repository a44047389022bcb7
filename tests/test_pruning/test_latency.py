import pytest

from mmdet_adasap.pruning import ChannelPruner, LatencyCost
from mmdet_adasap.pruning.latency import interpolate, measure_latency_table
from pruning_helpers import detector, fresh_pruner, single_thread  # noqa: F401  (fixtures)


def test_interpolation_is_bilinear_and_clamped():
    entry = {'cin': [8, 16], 'cout': [4, 12], 'ms': [[1.0, 3.0], [5.0, 11.0]]}
    assert interpolate(entry, 8, 4) == 1.0 and interpolate(entry, 16, 12) == 11.0
    # independent bilinear formula at (12, 6): a = 0.5 along cin, b = 0.25 along cout
    a, b = 0.5, 0.25
    expected = (1 - a) * ((1 - b) * 1.0 + b * 3.0) + a * ((1 - b) * 5.0 + b * 11.0)
    assert interpolate(entry, 12, 6) == pytest.approx(expected)
    assert interpolate(entry, 100, 100) == 11.0 and interpolate(entry, 1, 1) == 1.0


def test_latency_table_drives_a_latency_target(fresh_pruner, detector):
    groups = fresh_pruner('demo').groups
    table = measure_latency_table(groups, points=2, round_to=8, repeats=3, show_progress=False)
    prunable = {n for n, l in groups.layers.items() if l.in_group or l.out_group}
    assert set(table['layers']) == prunable
    for name, e in table['layers'].items():
        layer = groups.layers[name]
        assert e['cin'][-1] == layer.in_channels and e['cout'][-1] == layer.out_channels
        assert all(v > 0 for row in e['ms'] for v in row)
    # the measured rest of the network is a constant; zero it so the target bites on the table's layers only,
    # whatever the load on this shared machine did to the full-model measurement
    table['rest_ms'] = 0.0
    model, shape = detector('demo')
    pruner = ChannelPruner(model, shape, target=dict(type='latency', ratio=0.6), round_to=8, latency_table=table)
    assert isinstance(pruner.cost, LatencyCost)
    assert pruner.cost.dense == pytest.approx(table['rest_ms'] + sum(
        e['ms'][-1][-1] for e in table['layers'].values()))
    pruner.prune_one_shot()
    assert pruner.current_cost() <= 0.6 * pruner.cost.dense
    assert pruner.current_cost() < pruner.cost.dense


def test_latency_target_without_or_with_a_foreign_table(detector):
    model, shape = detector('demo')
    with pytest.raises(ValueError, match='latency lookup table'):
        ChannelPruner(model, shape, target=dict(type='latency', ratio=0.5))
    with pytest.raises(ValueError, match=r'\[1, 3, 64, 64\]'):
        ChannelPruner(model, shape, target=dict(type='latency', ratio=0.5),
                      latency_table={'input_shape': [1, 3, 64, 64], 'layers': {}, 'rest_ms': 0.0})
