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


def test_measured_table_covers_every_prunable_layer(fresh_pruner):
    groups = fresh_pruner('demo').groups
    table = measure_latency_table(groups, points=2, round_to=8, repeats=3, show_progress=False)
    prunable = {n for n, l in groups.layers.items() if l.in_group or l.out_group}
    assert set(table['layers']) == prunable
    for name, e in table['layers'].items():
        layer = groups.layers[name]
        assert e['cin'][-1] == layer.in_channels and e['cout'][-1] == layer.out_channels
        assert len(e['cout']) == (2 if layer.out_group else 1)
        assert all(v > 0 for row in e['ms'] for v in row)
    assert table['dense_ms'] > 0 and table['rest_ms'] >= 0


def _macs(layer, cin, cout):
    groups = cout if layer.depthwise else layer.groups
    return layer.positions * (layer.kernel_elems * cin * (cout // groups) + (cout if layer.bias else 0))


def test_latency_target_follows_the_table(fresh_pruner):
    """A table whose 'latency' is each layer's MACs (bilinear in (in, out), so interpolation is exact): the
    latency cost of any configuration must equal an independent MAC count of those layers."""
    pruner = fresh_pruner('demo')
    groups = pruner.groups
    table = {'input_shape': list(groups.input_shape), 'rest_ms': 5.0, 'layers': {}}
    for name, layer in groups.layers.items():
        if not (layer.in_group or layer.out_group):
            continue
        cins = [8, layer.in_channels] if layer.in_group and not layer.depthwise else [layer.in_channels]
        couts = [8, layer.out_channels] if layer.out_group else [layer.out_channels]
        table['layers'][name] = {'cin': cins, 'cout': couts, 'ms': [
            [_macs(layer, cout if layer.depthwise else cin, cout) / 1e6 for cout in couts] for cin in cins]}
    pruned = ChannelPruner(pruner.model, groups.input_shape, target=dict(type='latency', ratio=0.6), round_to=8,
                           latency_table=table)
    assert isinstance(pruned.cost, LatencyCost)
    kept = pruned.prune_one_shot()

    def independent(keep):
        total = 5.0
        for name in table['layers']:
            layer = groups.layers[name]
            cout = keep.get(layer.out_group, layer.out_channels)
            cin = cout if layer.depthwise else keep.get(layer.in_group, layer.in_channels)
            total += _macs(layer, cin, cout) / 1e6
        return total

    assert pruned.cost.dense == pytest.approx(independent({}))
    assert pruned.current_cost() == pytest.approx(independent(kept))
    assert independent(kept) <= 0.6 * independent({}) + 1e-9


def test_latency_target_without_or_with_a_foreign_table(detector):
    model, shape = detector('demo')
    with pytest.raises(ValueError, match='latency lookup table'):
        ChannelPruner(model, shape, target=dict(type='latency', ratio=0.5))
    with pytest.raises(ValueError, match=r'\[1, 3, 64, 64\]'):
        ChannelPruner(model, shape, target=dict(type='latency', ratio=0.5),
                      latency_table={'input_shape': [1, 3, 64, 64], 'layers': {}, 'rest_ms': 0.0})
