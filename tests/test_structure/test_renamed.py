"""Moved and renamed public names are refused with a message naming their new home."""
import importlib

import pytest

import mmdet_adasap


@pytest.mark.parametrize('module, new', [
    ('mmdet_adasap.pruning.latency', 'mmdet_adasap.pruning.latency_table'),
    ('mmdet_adasap.apis.generality', 'mmdet_adasap.benchmarks.generality'),
])
def test_moved_modules_refuse_naming_the_new_one(module, new):
    with pytest.raises(ImportError, match=new.replace('.', r'\.')):
        importlib.import_module(module)


@pytest.mark.parametrize('module, old, new', [
    ('mmdet_adasap.deploy.latency', 'latency_table', 'speedup_markdown'),
    ('mmdet_adasap.deploy.latency', 'NetworkGraph', 'TracedPart'),
    ('mmdet_adasap.deploy.latency', '_median_ms', 'time_round_robin'),
    ('mmdet_adasap', 'amp_variant_of', 'mmdet_adasap.engine.optim_wrappers.amp_variant_of'),
])
def test_renamed_names_refuse_naming_the_new_one(module, old, new):
    mod = importlib.import_module(module)
    with pytest.raises(ImportError, match=new):
        getattr(mod, old)
    with pytest.raises(ImportError, match=new):
        exec(f'from {module} import {old}', {})
    with pytest.raises(AttributeError):  # any other missing name stays an ordinary AttributeError
        getattr(mod, 'no_such_name')
    assert mmdet_adasap.__version__
