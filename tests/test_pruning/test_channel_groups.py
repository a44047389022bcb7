import pytest
import torch
import torch.nn as nn

from mmdet_adasap.pruning import build_channel_groups


def _roles(groups):
    return {(name, role): g.name for g in groups for name, role, _ in g.members}


@pytest.mark.parametrize('arch', ['ssd300', 'ssd512'])
def test_vgg_ssd_l2norm_follows_conv4_3_and_heads_keep_outputs(arch, fresh_pruner):
    pruner = fresh_pruner(arch)
    model, groups = pruner.model, pruner.groups
    counts = groups.count_by_component()
    assert counts.get('backbone', 0) >= 13 and counts.get('neck', 0) >= 4  # VGG convs (not fc7 out) + extras
    roles = _roles(groups)
    # conv4_3 is features.21 in mmdet's VGG16; its group holds the L2Norm scale and both head convs' inputs
    conv4_3 = roles[('backbone.features.21', 'out')]
    assert roles[('neck.l2_norm', 'scale')] == conv4_3
    assert roles[('bbox_head.cls_convs.0.0', 'in')] == conv4_3
    assert roles[('bbox_head.reg_convs.0.0', 'in')] == conv4_3
    l2_slice = [s for s in groups.by_name[conv4_3].slices if s.name == 'neck.l2_norm.weight']
    assert len(l2_slice) == 1 and l2_slice[0].param is model.neck.l2_norm.weight
    for name, role in roles:
        if name.startswith('bbox_head'):
            assert role == 'in', f'{name}: prediction convs must keep their output channels'
    assert {n for n, _ in groups.skipped} >= {f'bbox_head.cls_convs.{i}.0' for i in range(6)}
    assert 'feeds the traced output' in groups.report()


def test_faster_rcnn_frozen_stages_and_heads_untouched(fresh_pruner):
    pruner = fresh_pruner('faster_rcnn')
    model, groups = pruner.model, pruner.groups
    assert groups.count_by_component().get('backbone', 0) >= 20
    members = [name for g in groups for name, _, _ in g.members]
    assert not any(n.startswith(('rpn_head', 'roi_head', 'backbone.layer1.', 'backbone.conv1', 'backbone.bn1'))
                   for n in members)
    frozen = {n for n, m in model.named_modules() for p in m.parameters(recurse=False) if not p.requires_grad}
    assert frozen and not frozen & set(members)
    roles = _roles(groups)
    # FPN laterals' inputs follow the backbone stage outputs (residual groups) ...
    for i, stage in enumerate(('layer2', 'layer3', 'layer4'), start=1):
        owner = roles[(f'neck.lateral_convs.{i}.conv', 'in')]
        assert roles[(f'backbone.{stage}.0.downsample.0', 'out')] == owner
    # ... while the FPN outputs that feed RPN / RoI heads keep their 256 channels
    assert all(('neck.fpn_convs.%d.conv' % i, 'out') not in roles for i in range(4))
    report = groups.report()
    assert 'frozen' in report and 'rpn_head' in report


def test_ssdlite_depthwise_and_inverted_residual_groups(fresh_pruner):
    groups = fresh_pruner('ssdlite').groups
    assert groups.count_by_component().get('backbone', 0) >= 10
    dw = [(n, g.name) for g in groups for n, r, _ in g.members if r == 'dw']
    assert len(dw) >= 10
    # an expansion conv, its depthwise conv and the projection input form one group
    roles = _roles(groups)
    g = roles[('backbone.layer5.1.expand_conv.conv', 'out')]
    assert roles[('backbone.layer5.1.depthwise_conv.conv', 'dw')] == g
    assert roles[('backbone.layer5.1.linear_conv.conv', 'in')] == g
    # the residual trunk of a stage is one group: all projections' outputs together
    trunk = roles[('backbone.layer5.0.linear_conv.conv', 'out')]
    assert roles[('backbone.layer5.2.linear_conv.conv', 'out')] == trunk


def test_param_slices_index_the_right_channels(fresh_pruner):
    pruner = fresh_pruner('demo')
    model, groups = pruner.model, pruner.groups
    g = next(g for g in groups if g.name == 'backbone.layer1.0.conv1')
    names = {s.name: s for s in g.slices}
    assert names['backbone.layer1.0.conv1.weight'].dim == 0
    assert names['backbone.layer1.0.conv2.weight'].dim == 1
    assert names['backbone.layer1.0.bn1.weight'].param is model.backbone.layer1[0].bn1.weight
    for s in g.slices:  # plain chain: channel j is row/column j everywhere
        assert torch.equal(s.index.cpu(), torch.arange(g.size))
    ngs = groups.neuron_groups()
    assert [n.name for n in ngs] == [g.name for g in groups]
    assert ngs[0].slices is groups.groups[0].slices  # built once, shared


def test_ignored_and_prunable_layers(detector):
    model, shape = detector('demo')
    groups = build_channel_groups(model, shape, ignored_layers=['backbone.layer1'])
    assert not any(n.startswith('backbone.layer1.') for g in groups for n, _, _ in g.members)
    assert any('ignored_layers' in why for _, why in groups.skipped)
    only = build_channel_groups(model, shape, prunable=['neck.*'])
    assert len(only) > 0 and all(g.name.startswith('neck.') for g in only)


def test_bad_layer_names_are_named_in_the_error(detector):
    model, shape = detector('demo')
    with pytest.raises(ValueError, match='backbone.layer9'):
        build_channel_groups(model, shape, ignored_layers=['backbone.layer9'])
    with pytest.raises(ValueError, match='nek.extra'):
        build_channel_groups(model, shape, prunable=['nek.extra'])


class _Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * self.gain[None, :, None, None]


def test_unsupported_module_is_named_not_skipped():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _Scale(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    with pytest.raises(TypeError, match="'1'.*_Scale"):
        build_channel_groups(model, (1, 3, 16, 16), forward_fn=lambda m, x: m(x))
    # ignoring the module is the way around it: the group through it is left alone (the other one feeds the output)
    groups = build_channel_groups(model, (1, 3, 16, 16), forward_fn=lambda m, x: m(x), ignored_layers=['1'])
    assert len(groups) == 0 and ('0', 'ignored_layers (1)') in groups.skipped
