"""Fixtures for the pruning tests: each detector is built once per session, copied per test."""
import copy

import pytest

from pruning_helpers import ARCHS, build_detector

_CACHE = {}


@pytest.fixture
def detector():
    """detector(arch) -> (fresh copy of the model, trace input shape)."""
    def get(arch):
        if arch not in _CACHE:
            _CACHE[arch] = build_detector(arch)
        return copy.deepcopy(_CACHE[arch]), ARCHS[arch][1]
    return get
