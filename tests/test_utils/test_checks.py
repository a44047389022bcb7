"""One check per kind of value, where it enters: ints (bools refused), ratios, target types."""
import pytest

from mmdet_adasap.pruning import ChannelPruner
from mmdet_adasap.pruning.schedule import PruningSchedule
from mmdet_adasap.pruning.targets import check_cost_type, check_ratio
from mmdet_adasap.utils.checks import check_int


def test_check_int_refuses_bools_and_names_the_value():
    assert check_int(3, 'steps') == 3 and check_int(0, 'start', at_least=0) == 0
    for bad in (True, 0, -1, 2.0, '2', None):
        with pytest.raises(ValueError, match=r'steps must be an int >= 1, got ' + repr(bad).replace('.', r'\.')):
            check_int(bad, 'steps')


def test_schedule_refuses_true_as_a_step_count():  # True == 1 to Python; a config that says steps=True is a typo
    with pytest.raises(ValueError, match='schedule steps must be an int >= 1, got True'):
        PruningSchedule(ratio=0.5, kind='exponential', steps=True)
    with pytest.raises(ValueError, match='schedule start must be an int >= 0, got -1'):
        PruningSchedule(ratio=0.5, start=-1)


def test_ratio_and_target_type_checks_name_the_value():
    assert check_ratio(0.25) == 0.25
    for bad in (0, 1, 1.5, True, '0.5'):
        with pytest.raises(ValueError, match=r'target ratio .* is not a fraction in \(0, 1\)'):
            check_ratio(bad)
    with pytest.raises(ValueError, match=r"unknown target type 'macs'; choose one of \('params', 'flops', 'latency'\)"):
        check_cost_type('macs')


def test_pruner_checks_round_to_and_target_type_before_tracing():
    class Untraceable:  # tracing this would fail: the checks must come first
        pass
    with pytest.raises(ValueError, match='round_to must be an int >= 1, got True'):
        ChannelPruner(Untraceable(), round_to=True)
    with pytest.raises(ValueError, match="unknown target type 'macs'"):
        ChannelPruner(Untraceable(), target=dict(type='macs', ratio=0.5))
