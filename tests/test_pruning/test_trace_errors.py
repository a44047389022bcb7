"""A detector whose forward the pruner cannot run is refused with one clear error naming where and the way out
(``forward_fn``); DETR-family detectors trace backbone + neck by default; a bad ``forward_fn`` is refused."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from conftest import run_tool
from mmdet_adasap.apis import build_detector
from mmdet_adasap.pruning import ChannelPruner, build_channel_groups
from pruning_fixtures import flat_outputs

DINO = osp.join(osp.dirname(__import__('mmdet').__file__), '.mim', 'configs', 'dino',
                'dino-4scale_r50_8xb2-12e_coco.py')
SHAPE = (1, 3, 128, 128)


@pytest.fixture(scope='module')
def dino():
    """mmdet's DINO (R50, 4 scales) with random weights: 47 M parameters, built once for the module."""
    model, _ = build_detector(Config.fromfile(DINO))
    return model


def test_dino_whole_forward_is_refused_naming_the_detector_where_and_forward_fn(dino):
    with pytest.raises(ValueError) as info:
        ChannelPruner(dino, SHAPE, target=dict(type='flops', ratio=0.5), forward_fn=lambda m, x: m._forward(x))
    message = str(info.value)
    assert '\n' not in message
    for part in ('cannot trace DINO', 'DeformableDETR.pre_transformer', 'deformable_detr.py:152',
                 'AssertionError: (no message)', 'forward_fn=lambda model, x: model.extract_feat(x)',
                 'backbone + neck', '--trace extract_feat'):
        assert part in message, (part, message)
    assert isinstance(info.value.__cause__, AssertionError)  # the original, chained


def test_dino_prunes_backbone_by_default_and_exports_exactly(dino):
    pruner = ChannelPruner(dino, SHAPE, target=dict(type='flops', ratio=0.5), round_to=8)
    explicit = build_channel_groups(dino, SHAPE, forward_fn=lambda m, x: m.extract_feat(x))
    assert [g.name for g in pruner.groups] == [g.name for g in explicit]  # the default is extract_feat
    assert set(pruner.groups.count_by_component()) == {'backbone'}
    report = pruner.groups.report()
    assert 'not pruned, outside the traced forward' in report and 'bbox_head.cls_branches' in report \
        and 'decoder.layers' in report and 'encoder.layers' in report

    pruner.prune_one_shot()
    assert 0.45 < pruner.cost_ratio() <= 0.5
    small, config = pruner.export_with_config()
    assert config and sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in dino.parameters())
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        masked, exported = flat_outputs(dino.eval().extract_feat(x)), flat_outputs(small.eval().extract_feat(x))
    assert masked.shape == exported.shape
    assert torch.allclose(exported, masked, rtol=1e-4, atol=1e-4 * masked.abs().max().item())


class _HeadNeedsTargets(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 4, 1)

    def forward(self, x, targets=None):
        return self.conv(x) * targets['scale']


class _Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone, self.head = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), _HeadNeedsTargets()

    def forward(self, x):
        return self.head(self.backbone(x))


def test_any_failing_forward_names_the_innermost_module_its_error_and_forward_fn():
    with pytest.raises(ValueError) as info:
        ChannelPruner(_Detector(), (1, 3, 16, 16), forward_fn=lambda m, x: m(x))
    message = str(info.value)
    assert "cannot trace _Detector for pruning: the given forward_fn" in message
    assert "in module 'head' (_HeadNeedsTargets), in _HeadNeedsTargets.forward at" in message
    assert "TypeError: 'NoneType' object is not subscriptable" in message and 'forward_fn' in message
    assert isinstance(info.value.__cause__, TypeError)


@pytest.mark.parametrize('given, shown', [('extract_feat', "'extract_feat' (str)"), (0, '0 (int)')])
def test_a_forward_fn_that_is_not_callable_is_refused_naming_it(given, shown):
    with pytest.raises(ValueError, match=r'forward_fn must be callable') as info:
        ChannelPruner(_Detector().backbone, (1, 3, 16, 16), forward_fn=given)
    assert f'got {shown}' in str(info.value)


@pytest.mark.parametrize('returned, shown', [(None, 'None (NoneType)'), ('boxes', "'boxes' (str)"),
                                             ({'a': [None]}, "{'a': [None]} (dict)")])
def test_a_forward_fn_returning_no_tensor_is_refused_naming_what_it_returned(returned, shown):
    with pytest.raises(ValueError) as info:
        ChannelPruner(_Detector().backbone, (1, 3, 16, 16), forward_fn=lambda m, x: (m(x), returned)[1])
    assert f'forward_fn returned {shown}, which holds no tensor' in str(info.value)


def test_prune_tool_refuses_dino_whole_forward_in_one_error_line(dino, tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    dense = tmp_path / 'dino.pth'
    torch.save({'state_dict': dino.state_dict()}, dense)
    proc = run_tool('tools/prune.py', DINO, str(dense), '--input-size', '128', '--out', str(tmp_path / 'pruned.pth'),
                    '--trace', 'forward', timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode == 1 and len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'cannot trace DINO' in errors[0] and 'forward_fn' in errors[0] and '--trace extract_feat' in errors[0]
