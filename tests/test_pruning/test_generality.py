"""Which detectors prune: the generality matrix (mmdet's common detectors and the five shipped ones), and small
models that pin down each mechanism it relies on (GroupNorm blocks, modules run outside the traced outputs,
frozen BN, the smallest input, the export's self-check)."""
import copy

import pytest
import torch
import torch.nn as nn

from mmdet_adasap.benchmarks.generality import DETECTORS, matrix_row
from mmdet_adasap.pruning import ChannelMasks, ChannelPruner, build_channel_groups, export_pruned
from mmdet_adasap.pruning.export_check import ExportMismatch, check_export

GN_HEADS = ('FCOS', 'ATSS', 'GFL')


@pytest.mark.parametrize('name', list(DETECTORS))
def test_detector_prunes_exports_exactly_reloads_and_runs_a_test_iteration(name):
    row = matrix_row(name)
    assert row.error is None, row.error
    assert sum(row.groups.values()) > 0 and row.flops_ratio <= row.target
    assert row.target - row.flops_ratio <= row.step_ratio + 1e-9  # within one block of the target
    assert row.max_abs_diff <= 1e-5 * max(1.0, row.output_scale)
    assert row.test_boxes >= 0
    if any(k in name for k in GN_HEADS):  # every GN-head conv prunes, in whole norm groups (256 ch / 32 groups)
        head = [r for r in row.roots if r.startswith('bbox_head')]
        assert head and all(row.blocks.get(r) == 8 for r in head)
    if 'YOLOv3' in name:  # mmdet's MobileNetV2 runs conv2 and discards its output
        assert row.side_outputs == ['backbone.conv2.conv']
    if name in ('RTMDet-tiny', 'YOLOX-s'):  # the CSP layers' concatenations are pruned through, both sides
        assert any(r.endswith(('main_conv.conv', 'short_conv.conv')) for r in row.roots)
        assert any(r.startswith('backbone.stage4.1.conv1') for r in row.roots)  # the SPP concatenation
    if 'C4' in name:  # caffe-style frozen BN is sliced; frozen_stages=1 (stem, layer1) stays untouched
        assert row.groups['backbone'] > 0
        assert not any(r.startswith(('backbone.conv1', 'backbone.layer1.')) for r in row.roots)


# ----------------------------------------------------------------------------- GroupNorm
def _gn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
                         nn.Conv2d(16, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()


def _masked(model, shape, keep):
    groups = build_channel_groups(model, shape, forward_fn=lambda m, x: m(x))
    masks = ChannelMasks(groups)
    masks.set(keep)
    masks.apply()
    return groups, masks.masks


def test_groupnorm_channels_go_in_whole_norm_groups():
    shape = (1, 3, 8, 8)
    pruner = ChannelPruner(_gn_net(), shape, target=dict(type='flops', ratio=0.5), round_to=1,
                           forward_fn=lambda m, x: m(x))
    assert {g.name: g.block for g in pruner.groups} == {'0': 4, '3': 4}
    kept = pruner.prune_one_shot()
    assert all(k % 4 == 0 for k in kept.values()) and sum(kept.values()) < 24
    exported = pruner.export()  # checked against the masked model inside
    for dense_gn, gn in ((pruner.model[1], exported[1]), (pruner.model[4], exported[4])):
        assert gn.num_channels == kept['0' if dense_gn is pruner.model[1] else '3']
        assert gn.num_channels // gn.num_groups == dense_gn.num_channels // dense_gn.num_groups


def test_cutting_inside_a_groupnorm_group_is_caught_by_the_export_check():
    """The reason for blocks: masking 2 of a norm group's 4 channels changes its statistics, so the export
    (which drops them) computes something else; the self-check names the GroupNorm."""
    model = _gn_net()
    keep = torch.ones(16, dtype=torch.bool)
    keep[[0, 1]] = False
    groups, masks = _masked(model, (1, 3, 8, 8), {'0': keep})
    with pytest.raises(ExportMismatch, match=r"GroupNorm '1' would keep 14 channels, not a multiple of its 4"):
        export_pruned(groups, masks)
    keep[[4, 5]] = False  # 4 channels, but half of norm group 0 and half of group 1
    groups, masks = _masked(model, (1, 3, 8, 8), {'0': keep})
    with pytest.raises(ExportMismatch, match=r"exported layer '1' differs"):
        export_pruned(groups, masks)
    keep = torch.ones(16, dtype=torch.bool)
    keep[:4] = False  # the whole first norm group: exact
    groups, masks = _masked(model, (1, 3, 8, 8), {'0': keep})
    assert export_pruned(groups, masks)[1].num_groups == 3


def test_export_check_names_the_first_layer_that_differs():
    model = _gn_net()
    keep = torch.ones(16, dtype=torch.bool)
    keep[:4] = False
    groups, masks = _masked(model, (1, 3, 8, 8), {'0': keep})
    exported = export_pruned(groups, masks)
    tampered = copy.deepcopy(exported)
    with torch.no_grad():
        tampered[3].weight[0, 0, 0, 0] += 1.0
    with pytest.raises(ExportMismatch, match=r"exported layer '3' differs"):
        check_export(groups, masks, tampered)
    tampered = copy.deepcopy(exported)
    tampered[3] = nn.Conv2d(16, 8, 3, padding=1)  # a consumer left with the dense input width
    with pytest.raises(ExportMismatch, match=r"fails in layer '3'"):
        check_export(groups, masks, tampered)


# ----------------------------------------------------------------------------- run but not traced
class _DiscardsABranch(nn.Module):
    """Like mmdet's MobileNetV2: ``side`` runs on ``a``'s output, which the forward then throws away."""

    def __init__(self):
        super().__init__()
        self.a, self.side, self.out = nn.Conv2d(3, 16, 3), nn.Conv2d(16, 32, 1), nn.Conv2d(16, 4, 1)

    def forward(self, x):
        a = torch.relu(self.a(x))
        self.side(a)
        return self.out(a)


def test_a_module_run_outside_the_traced_outputs_is_coupled_to_its_producer():
    model, shape = _DiscardsABranch().eval(), (1, 3, 10, 10)
    pruner = ChannelPruner(model, shape, target=dict(type='flops', ratio=0.5), round_to=4,
                           forward_fn=lambda m, x: m(x))
    assert ('side', 'in') in [(n, r) for n, r, _ in pruner.groups.by_name['a'].members]
    kept = pruner.prune_one_shot()['a']
    exported = pruner.export()
    assert exported.side.in_channels == kept < 16
    exported(torch.zeros(shape))  # runs (before: "expected input ... to have 16 channels")
    skipped = build_channel_groups(model, shape, forward_fn=lambda m, x: m(x), ignored_layers=['side']).skipped
    assert ('a', 'ignored_layers (side)') in skipped


# ----------------------------------------------------------------------------- frozen BN vs frozen stage
def test_frozen_bn_is_pruned_with_its_conv_a_frozen_conv_is_left_alone():
    def net():
        return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    model = net()
    model[1].requires_grad_(False)
    groups = build_channel_groups(model, (1, 3, 8, 8), forward_fn=lambda m, x: m(x))
    assert [g.name for g in groups] == ['0'] and ('1', 'bn') in [(n, r) for n, r, _ in groups.groups[0].members]
    masks = ChannelMasks(groups)
    masks.register_grad_hooks()  # no hook on the frozen BN's parameters (torch refuses those)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Conv2d(16, 4, 1))
    model[2].requires_grad_(False)  # a frozen stage in the middle: neither its inputs nor outputs change
    groups = build_channel_groups(model, (1, 3, 12, 12), forward_fn=lambda m, x: m(x))
    assert len(groups) == 0 and {('0', 'frozen (2)'), ('2', 'frozen (2)')} <= set(groups.skipped)


# ----------------------------------------------------------------------------- too small an input
def test_too_small_an_input_names_the_smallest_accepted():
    # three 2x pools then a 4x4 kernel: a side s runs iff s // 8 >= 4, i.e. s >= 32
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 4), nn.Conv2d(8, 2, 1))
    with pytest.raises(ValueError, match=r'smallest square input it accepts is 32x32'):
        build_channel_groups(model, (1, 3, 24, 24), forward_fn=lambda m, x: m(x))
    assert len(build_channel_groups(model, (1, 3, 32, 32), forward_fn=lambda m, x: m(x))) == 2


class _NeedsSide(nn.Module):
    """Refuses inputs below 40 px with the message mmcv's ops give (not one of torch's size messages)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        if x.shape[-1] < 40:
            raise RuntimeError('input image is smaller than kernel')
        return self.b(self.a(x))


def test_an_input_smaller_than_a_kernel_names_the_smallest_accepted():
    with pytest.raises(ValueError, match=r'smallest square input it accepts is 40x40'):
        build_channel_groups(_NeedsSide(), (1, 3, 24, 24), forward_fn=lambda m, x: m(x))
