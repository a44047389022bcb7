"""ONNX export of mmdet detectors (dense or pruned) with preprocessing, box decoding and NMS inside the graph.

Why our own thin wrapper and not mmdeploy: mmdeploy 1.3.1 (its last release) installs here only by downgrading
``onnx`` to 1.17 and ``protobuf`` to 3.20.2 (below what onnxruntime 1.32 requires), and its ``torch2onnx``
calls ``torch.onnx.export`` without ``dynamo=False``, which torch >= 2.9 routes to the dynamo exporter (needs
``onnxscript``; mmdeploy's rewriters are TorchScript-exporter symbolics). With that forced off it does export
the demo SSD, but only through a monkeypatch of torch inside a pinned-down stack. The wrapper here is small:
the network is mmdet's own modules, traced by the TorchScript exporter (``dynamo=False``: it takes
``autograd.Function.symbolic`` for the NMS op and mmcv's ``RoIAlign`` symbolic, and traces mmdet heads without
graph breaks); only the test-time post-processing is re-expressed with static shapes, one module per head
family: ``dense_graphs`` (SSD, RTMDet: mmdet's ``BaseDenseHead`` path), ``yolox_graph`` (YOLOX),
``two_stage_graph`` (Faster R-CNN), from the pieces in ``onnx_ops``.

Graph contract (stored in the model's ``metadata_props`` under ``mmdet_adasap``, read by ``OnnxDetector``):
input ``input`` float32 (B, 3, H, W) **raw pixels 0-255 in the channel order mmdet's pipeline loads (BGR)**;
the data preprocessor's ``bgr_to_rgb`` and mean/std are applied inside. Outputs ``dets`` (B, K, 5) x1, y1,
x2, y2, score in input pixels, sorted by score, and ``labels`` (B, K) int64; K = ``max_per_img`` (fewer
detections are padded with score 0 and label -1, so batches have one shape). H, W are fixed at export
(anchors are constants); the batch is fixed or dynamic (``batch='dynamic'``). Each graph's pre-NMS tensors
(decoded boxes and scores of every prior, before any selection) stay in the file under the names the metadata
lists (``pre_nms``), not as outputs; :func:`with_pre_nms_outputs` declares them as outputs for the parity check.
"""
import json
import os
import warnings
import os.path as osp
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmdet.models.dense_heads import RPNHead, RTMDetHead, RTMDetSepBNHead, SSDHead, YOLOXHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead

from .dense_graphs import RTMDetGraph, SSDGraph
from .onnx_ops import nms_topk  # noqa: F401  (part of the package's interface)
from .two_stage_graph import TwoStageGraph
from .yolox_graph import YOLOXGraph

MIN_OPSET = 11  # NonMaxSuppression is opset 10; TopK with a k input and ScatterND need 11
MIN_OPSET_TWO_STAGE = 16  # RoiAlign's half_pixel mode (mmcv's aligned=True) is opset 16
DEFAULT_OPSET = 17
METADATA_KEY = 'mmdet_adasap'
INPUT_DESCRIPTION = 'raw pixels 0-255, float32, (B, 3, H, W), channel order as loaded by mmcv (BGR)'
PRE_NMS_PREFIX = 'pre_nms_'  # graph tensors kept under these names (not outputs) for the parity check


class ExportError(ValueError):
    """A model, option or path the exporter cannot handle (the message names it and the fix)."""


# ----------------------------------------------------------------------------------------------- graphs
#: single-stage head type (exactly; subclasses such as the instance-segmentation RTMDetInsHead differ) -> graph
SINGLE_STAGE_GRAPHS = {SSDHead: SSDGraph, RTMDetHead: RTMDetGraph, RTMDetSepBNHead: RTMDetGraph,
                       YOLOXHead: YOLOXGraph}
SUPPORTED = {
    'SingleStageDetector': 'SSDHead (SSD300/512, SSDLite, the demo SSD), RTMDetHead / RTMDetSepBNHead (RTMDet), '
                           'YOLOXHead (YOLOX)',
    'TwoStageDetector': 'RPNHead + StandardRoIHead (Faster R-CNN)',
}


def build_graph(detector: nn.Module, hw) -> nn.Module:
    """The export module for ``detector``, or ``ExportError`` naming the unsupported part."""
    supported = '; '.join(f'{k} with {v}' for k, v in SUPPORTED.items())
    if isinstance(detector, SingleStageDetector):
        head = detector.bbox_head
        if type(head) not in SINGLE_STAGE_GRAPHS:
            raise ExportError(f'the ONNX exporter does not support head {type(head).__name__!r} '
                              f'(bbox_head.type); supported: {supported}')
        graph = SINGLE_STAGE_GRAPHS[type(head)](detector, hw)
    elif isinstance(detector, TwoStageDetector):
        rpn, roi = getattr(detector, 'rpn_head', None), getattr(detector, 'roi_head', None)
        if type(rpn) is not RPNHead or type(roi) is not StandardRoIHead or getattr(roi, 'with_mask', False):
            raise ExportError(f'the ONNX exporter does not support rpn_head {type(rpn).__name__!r} / roi_head '
                              f'{type(roi).__name__!r}{" with a mask head" if getattr(roi, "with_mask", 0) else ""}'
                              f'; supported: {supported}')
        layers = roi.bbox_roi_extractor.roi_layers
        if any(getattr(layer, 'pool_mode', 'avg') != 'avg' or type(layer).__name__ != 'RoIAlign' for layer in layers):
            raise ExportError('the ONNX exporter supports RoIAlign with pool_mode="avg" in the RoI extractor only; '
                              f'got {[type(layer).__name__ for layer in layers]}')
        graph = TwoStageGraph(detector, hw)
    else:
        raise ExportError(f'the ONNX exporter does not support detector {type(detector).__name__!r}; '
                          f'supported: {supported}')
    return graph.eval()


# ----------------------------------------------------------------------------------------------- export
def check_export_args(out_file: str, batch: Union[int, str], opset: int) -> None:
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f'opset {opset} is too old: NMS inside the graph (NonMaxSuppression, TopK with a '
                          f'dynamic k, ScatterND, RoiAlign) needs opset >= {MIN_OPSET}; use --opset '
                          f'{DEFAULT_OPSET} (the default)')
    if batch != 'dynamic' and not (isinstance(batch, int) and batch >= 1):
        raise ExportError(f"batch must be a positive integer or 'dynamic', got {batch!r}")
    folder = osp.dirname(osp.abspath(out_file))
    if not osp.isdir(folder):
        raise ExportError(f'output folder {folder!r} does not exist: create it first (nothing was written)')
    if not out_file.endswith('.onnx'):
        raise ExportError(f'output file {out_file!r} should end with .onnx')


def export_onnx(detector: nn.Module, out_file: str, input_hw: Sequence[int], batch: Union[int, str] = 1,
                opset: int = DEFAULT_OPSET, metadata: Optional[dict] = None) -> dict:
    """Export ``detector`` (eval mode, CPU) with post-processing to ``out_file``; returns the metadata written
    into the model (input contract, preprocessing, sizes, post-processing settings, pre-NMS tensor names).
    Written to a temporary file, then moved."""
    import onnx  # optional: only writing / reading ONNX metadata needs it
    check_export_args(out_file, batch, opset)
    hw = (int(input_hw[0]), int(input_hw[1]))
    divisor = getattr(detector.data_preprocessor, 'pad_size_divisor', 1) or 1
    if hw[0] % divisor or hw[1] % divisor:
        raise ExportError(f'input size {hw} is not a multiple of the data preprocessor\'s pad_size_divisor '
                          f'({divisor}): export at a multiple of it')
    graph = build_graph(detector.cpu().eval(), hw)
    if isinstance(graph, TwoStageGraph) and opset < MIN_OPSET_TWO_STAGE:
        raise ExportError(f'opset {opset} is too old for {type(detector).__name__}: RoIAlign with aligned=True '
                          f'needs opset >= {MIN_OPSET_TWO_STAGE} (RoiAlign half_pixel); use --opset {DEFAULT_OPSET}')
    tmp = out_file + '.tmp'
    try:
        _trace(graph, tmp, hw, batch, opset)
        model = onnx.load(tmp)
        pre_nms = _hide_pre_nms_outputs(model)
        meta = dict(input=INPUT_DESCRIPTION, input_hw=list(hw), batch=batch, opset=opset,
                    num_classes=_num_classes(detector), max_per_img=graph.max_per_img,
                    **graph.preprocess.describe(), postprocess=graph.postprocess(), pre_nms=pre_nms,
                    **(metadata or {}))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return meta


def _trace(graph: nn.Module, path: str, hw, batch: Union[int, str], opset: int) -> None:
    """TorchScript-export ``graph`` with outputs ``dets``, ``labels`` and the pre-NMS tensors."""
    outputs = ['dets', 'labels'] + [PRE_NMS_PREFIX + name for name in graph.PRE_NMS]
    example = torch.rand(1 if batch == 'dynamic' else batch, 3, *hw) * 255
    dynamic_axes = {name: {0: 'batch'} for name in ['input'] + outputs} if batch == 'dynamic' else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)  # static sizes are the contract (H, W fixed)
        warnings.filterwarnings('ignore', message='Constant folding - Only steps=1')  # strided box slices
        torch.onnx.export(graph, (example, ), path, dynamo=False, opset_version=opset, input_names=['input'],
                          output_names=outputs, dynamic_axes=dynamic_axes, do_constant_folding=True)


def _hide_pre_nms_outputs(model) -> dict:
    """Leave ``dets`` and ``labels`` as the only outputs; the pre-NMS tensors stay in the graph under their
    names (returned: short name -> tensor name), for :func:`with_pre_nms_outputs`."""
    hidden = {o.name[len(PRE_NMS_PREFIX):]: o.name for o in model.graph.output if o.name.startswith(PRE_NMS_PREFIX)}
    kept = [o for o in model.graph.output if not o.name.startswith(PRE_NMS_PREFIX)]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return hidden


def with_pre_nms_outputs(onnx_file: str) -> bytes:
    """``onnx_file``'s graph, unchanged but for its pre-NMS tensors declared as extra outputs (serialised, for
    an ONNX Runtime session of the parity check)."""
    import onnx  # optional: only writing / reading ONNX needs it
    model = onnx.load(onnx_file)
    names = read_metadata(onnx_file).get('pre_nms')
    if not names:
        raise ExportError(f'{onnx_file!r} names no pre-NMS tensors in its metadata (exported by an older version): '
                          'export it again with tools/export_onnx.py')
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names.values())
    return model.SerializeToString()


def _num_classes(detector) -> int:
    head = getattr(detector, 'bbox_head', None) or detector.roi_head.bbox_head
    return int(head.num_classes)


def read_metadata(onnx_file: str) -> dict:
    """The ``mmdet_adasap`` metadata of an exported model (``ExportError`` if it was not exported here)."""
    import onnx  # optional: only writing / reading ONNX metadata needs it
    model = onnx.load(onnx_file, load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f'{onnx_file!r} has no {METADATA_KEY!r} metadata: export it with tools/export_onnx.py')
