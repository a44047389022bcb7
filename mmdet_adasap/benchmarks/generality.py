"""Which mmdet detectors prune: one row of the generality matrix per detector config.

For each config the detector is built with random weights (no pretrained download), traced at a small input,
pruned one-shot to a FLOPs ratio, exported (the export checks itself against the masked model), saved as a
pruned checkpoint, built again as the config's ``PrunedDetector`` from the channel file written beside it and
loaded (:func:`~mmdet_adasap.apis.build_detector`, what the tools do), and run for one
test iteration (``test_step``: data preprocessor, forward, box post-processing). ``tools/generality_matrix.py``
prints the table; ``tests/test_pruning/test_generality.py`` asserts every row.
"""
import math
import os.path as osp
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmdet_adasap.apis.model import build_detector
from mmdet_adasap.pruning import ChannelPruner, channel_file_of, save_pruned_checkpoint
from mmdet_adasap.pruning.channel_groups import flatten_outputs
from mmdet_adasap.pruning.targets import allowed_sizes, group_step

MMDET_CONFIGS = osp.join(osp.dirname(__import__('mmdet').__file__), '.mim', 'configs')
REPO_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')

#: detector -> (config path, square input side[, pruner options]): small inputs (SSD300/512 and DDOD accept
#: nothing below 257 px). Where the trace cannot follow some channels, ``ignored_layers`` is the value the
#: pruner's own error offers (verified there): TOOD's task decomposition uses the inter convs' concatenation
#: through a reshape and its reduction conv's weights functionally, DDOD's head has deformable convs (mmcv's
#: DeformConv2dPack). With TOOD's head whole, 0.53 of its FLOPs is the least a prune can keep: its row asks 0.6.
DETECTORS: Dict[str, tuple] = {
    'RetinaNet R50-FPN (VOC)': (f'{MMDET_CONFIGS}/pascal_voc/retinanet_r50_fpn_1x_voc0712.py', 96),
    'FCOS R50-caffe GN-head': (f'{MMDET_CONFIGS}/fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 96),
    'ATSS R50-FPN': (f'{MMDET_CONFIGS}/atss/atss_r50_fpn_1x_coco.py', 96),
    'GFL R50-FPN': (f'{MMDET_CONFIGS}/gfl/gfl_r50_fpn_1x_coco.py', 96),
    'YOLOv3 MobileNetV2': (f'{MMDET_CONFIGS}/yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py', 96),
    'Faster R-CNN R50-caffe-C4': (f'{MMDET_CONFIGS}/faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', 96),
    'Cascade R-CNN R50-FPN': (f'{MMDET_CONFIGS}/cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 96),
    'RTMDet-tiny': (f'{MMDET_CONFIGS}/rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 128),
    'YOLOX-s': (f'{MMDET_CONFIGS}/yolox/yolox_s_8xb8-300e_coco.py', 128),
    'TOOD R50-FPN': (f'{MMDET_CONFIGS}/tood/tood_r50_fpn_1x_coco.py', 96,
                     dict(ignored_layers=['bbox_head.inter_convs'], ratio=0.6)),
    'DDOD R50-FPN': (f'{MMDET_CONFIGS}/ddod/ddod_r50_fpn_1x_coco.py', 257,
                     dict(ignored_layers=['bbox_head.cls_convs.0.conv', 'bbox_head.reg_convs.0.conv'])),
    'shipped: SSD-R18mini (demo)': (f'{REPO_CONFIGS}/demo/ssd-r18mini_synthvoc_dense.py', 128),
    'shipped: SSD300 VGG16': (f'{REPO_CONFIGS}/ssd/ssd300_voc0712_dense.py', 264),
    'shipped: SSD512 VGG16': (f'{REPO_CONFIGS}/ssd/ssd512_voc0712_dense.py', 264),
    'shipped: SSDLite MobileNetV2': (f'{REPO_CONFIGS}/ssd/ssdlite-mbv2_voc0712_dense.py', 128),
    'shipped: Faster R-CNN R50-FPN': (f'{REPO_CONFIGS}/faster_rcnn/faster-rcnn_r50_fpn_voc0712_dense.py', 96),
}


@dataclass
class MatrixRow:
    detector: str
    input_side: int
    groups: Dict[str, int] = field(default_factory=dict)  # prunable groups per component
    left_alone: Dict[str, int] = field(default_factory=dict)  # why -> groups left alone
    untraced: Dict[str, int] = field(default_factory=dict)  # why -> conv/linear layers outside the trace
    flops_ratio: Optional[float] = None  # pruned / dense FLOPs of the traced part
    step_ratio: Optional[float] = None  # the cheapest block a prune could give back, as a fraction of dense
    ignored: List[str] = field(default_factory=list)  # ignored_layers the row prunes with
    target: float = 0.5  # the FLOPs ratio it prunes to
    max_abs_diff: Optional[float] = None  # max |masked - exported| over the traced outputs
    output_scale: Optional[float] = None  # max |masked| over the traced outputs
    blocks: Dict[str, int] = field(default_factory=dict)  # group -> block, where whole GroupNorm groups go
    side_outputs: List[str] = field(default_factory=list)  # modules run outside the traced outputs
    roots: List[str] = field(default_factory=list)  # root layers of the prunable groups
    test_boxes: Optional[int] = None  # boxes predicted by one test iteration of the reloaded checkpoint
    seconds: float = 0.0
    error: Optional[str] = None

    def cells(self):
        groups = ', '.join(f'{k} {v}' for k, v in sorted(self.groups.items())) or '-'
        alone = '; '.join([f'{k}: {v} groups' for k, v in sorted(self.left_alone.items())]
                          + [f'{k}: {v} layers' for k, v in sorted(self.untraced.items())]) or '-'
        if self.error:
            return [self.detector, str(self.input_side), groups, alone, '-', '-', f'no: {self.error}',
                    f'{self.seconds:.1f}']
        return [self.detector, str(self.input_side), groups, alone, f'{self.flops_ratio:.3f} ({self.target:g})',
                f'{self.max_abs_diff:.1e}', f'yes ({self.test_boxes} boxes)', f'{self.seconds:.1f}']


HEADER = ['detector', 'input', 'prunable groups', 'left alone', 'FLOPs kept (target)', 'max abs(masked - exported)',
          'reloads + test iter', 's']


def _count(items) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def build_random_detector(config: str, seed: int = 0) -> Tuple[nn.Module, Config]:
    """The config's detector without pretrained weights, initialised with tame random values (He-normal
    convs, random norm affine and BN statistics) so that outputs stay O(1) and comparisons mean something."""
    cfg = Config.fromfile(config)
    model, _ = build_detector(cfg)
    random_init_(model, seed)
    return model.eval(), cfg


@torch.no_grad()
def random_init_(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(1.0 / m.weight[0].numel()))
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.weight is not None:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if getattr(m, 'running_mean', None) is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        elif type(m).__name__ == 'L2Norm':
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 10 + 5)
    return model


def matrix_row(name: str, ratio: float = 0.5, round_to: int = 8, config: Optional[str] = None,
               side: Optional[int] = None) -> MatrixRow:
    """Prune, export, save, reload through the config and test one detector; errors end up in ``row.error``."""
    config, side, *options = (config, side) if config else DETECTORS[name]
    options = dict(options[0]) if options else {}
    row = MatrixRow(name, side, ignored=list(options.get('ignored_layers', [])), target=options.get('ratio', ratio))
    start = time.perf_counter()
    try:
        model, cfg = build_random_detector(config)
        pruner = ChannelPruner(model, (1, 3, side, side), target=dict(type='flops', ratio=row.target),
                               round_to=round_to, ignored_layers=row.ignored)
        groups = pruner.groups
        row.groups = groups.count_by_component()
        row.left_alone = _count(why.split(' (')[0] for _, why in groups.skipped)
        row.untraced = _count(why.split(' (')[0] for _, why in groups.untraced)
        row.blocks = {g.name: g.block for g in groups if g.block > 1}
        row.side_outputs, row.roots = list(getattr(groups.forward_fn, 'names', [])), [g.name for g in groups]
        pruner.prune_one_shot()
        row.flops_ratio = pruner.cost_ratio()
        row.step_ratio = smallest_step(pruner) / pruner.cost.dense
        pruned, channels = pruner.export_with_config()  # raises if the export differs from the masked model
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref, got = (flatten_outputs(pruner.groups.forward_fn(m, x)) for m in (model, pruned.eval()))
        row.max_abs_diff = max(float((a - b).abs().max()) for a, b in zip(ref, got))
        row.output_scale = max(float(a.abs().max()) for a in ref)
        with tempfile.TemporaryDirectory() as tmp:
            path = save_pruned_checkpoint(osp.join(tmp, 'pruned.pth'), pruned, channels)
            pruned_cfg = Config(dict(model=dict(type='PrunedDetector', architecture=cfg.model,
                                                channels=channel_file_of(path))))
            reloaded, _ = build_detector(pruned_cfg, path)
        row.test_boxes = test_iteration(reloaded, side)
    except (TypeError, ValueError, RuntimeError) as err:
        row.error = f'{type(err).__name__}: {str(err).splitlines()[0]}'
    row.seconds = time.perf_counter() - start
    return row


def smallest_step(pruner: ChannelPruner) -> float:
    """The cost of the cheapest block any group could give back from the pruner's current masks: a prune that
    landed within one block of its target is below it by less than this."""
    keep = {n: int(m.sum()) for n, m in pruner.masks.masks.items()}
    now, steps = pruner.cost(keep), []
    for g in pruner.groups:
        up = next((k for k in allowed_sizes(g.size, group_step(g, pruner.round_to)) if k > keep[g.name]), None)
        if up is not None:
            steps.append(pruner.cost.group_costs(keep, g.name, [up])[0] - now)
    return min(steps, default=0.0)


@torch.no_grad()
def test_iteration(model: nn.Module, side: int) -> int:
    """One ``test_step`` (preprocess, forward, post-process) on a random image; returns the boxes kept."""
    img = torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    sample = DetDataSample(metainfo=dict(img_shape=(side, side), ori_shape=(side, side), scale_factor=(1.0, 1.0),
                                         pad_shape=(side, side)))
    out = model.test_step(dict(inputs=[img], data_samples=[sample]))
    return len(out[0].pred_instances)


def markdown_table(rows) -> str:
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
    lines += ['| ' + ' | '.join(r.cells()) + ' |' for r in rows]
    return '\n'.join(lines)
