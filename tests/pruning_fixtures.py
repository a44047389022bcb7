"""Fixtures shared by the suite (registered in ``conftest.py`` as a plugin): detectors built from the real configs
with tame random weights, their pruners and pruned exports (cached), and one intra-op thread per test."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# config -> trace input (N, C, H, W): small where the architecture allows (SSD300's VGG extra layers need 300)
ARCHS = {
    'demo': ('configs/demo/ssd-r18mini_synthvoc_dense.py', (1, 3, 256, 256)),
    'ssd300': ('configs/ssd/ssd300_voc0712_dense.py', (1, 3, 300, 300)),
    'ssd512': ('configs/ssd/ssd512_voc0712_dense.py', (1, 3, 320, 320)),
    'ssdlite': ('configs/ssd/ssdlite-mbv2_voc0712_dense.py', (1, 3, 192, 192)),
    'faster_rcnn': ('configs/faster_rcnn/faster-rcnn_r50_fpn_voc0712_dense.py', (1, 3, 192, 192)),
}


def build_detector(arch: str) -> nn.Module:
    """The config's detector with tame random weights (He-normal convs, random BN affine/stats) so that
    outputs stay O(1) through VGG16's 15 bias-free-BN layers and masked/exported comparisons are meaningful."""
    from mmdet_adasap.apis import build_detector as build_from_config
    model, _ = build_from_config(Config.fromfile(osp.join(REPO, ARCHS[arch][0])))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(1.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif type(m).__name__ == 'L2Norm':
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 10 + 5)
    return model.eval()


def flat_outputs(out) -> torch.Tensor:
    if torch.is_tensor(out):
        return out.flatten()
    return torch.cat([flat_outputs(o) for o in out])


_CACHE = {}


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


@pytest.fixture
def detector():
    """detector(arch) -> (fresh copy of the model, trace input shape); each model is built once per session."""
    def get(arch):
        return copy.deepcopy(_cached(arch, lambda: build_detector(arch))), ARCHS[arch][1]
    return get


def _make_pruner(arch):
    from mmdet_adasap.pruning import ChannelPruner
    return ChannelPruner(build_detector(arch), ARCHS[arch][1], target=dict(type='flops', ratio=0.5), round_to=8)


@pytest.fixture
def fresh_pruner():
    """fresh_pruner(arch) -> an unpruned ChannelPruner (FLOPs 0.5, round_to 8) on its own model copy.

    Tracing is done once per session; each call deep-copies model and pruner together, so the copy's
    ParamSlices point at the copy's parameters."""
    def get(arch):
        return copy.deepcopy(_cached(('pruner', arch), lambda: _make_pruner(arch)))
    return get


@pytest.fixture
def pruned_export():
    """pruned_export(arch) -> (pruner after one-shot pruning, exported model, channel config). Shared across
    tests: treat as read-only."""
    def get(arch):
        def make():
            pruner = copy.deepcopy(_cached(('pruner', arch), lambda: _make_pruner(arch)))
            pruner.prune_one_shot()
            exported, config = pruner.export_with_config()
            return pruner, exported.eval(), config
        return _cached(('export', arch), make)
    return get


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: on this 2-core machine shared with other jobs, 2 spinning threads make small convs
    ~100x slower (measured 60 ms vs 0.25 ms) and latency tables meaningless. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
