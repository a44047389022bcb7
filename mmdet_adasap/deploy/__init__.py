"""Deployment: ONNX export with post-processing inside the graph, and ONNX Runtime evaluation."""
from .api import check_parity, default_input_hw, export_detector, pytorch_predictions
from .kept_sets import match_detections
from .onnx_detector import OnnxDetector, make_session, use_onnxruntime
from .onnx_export import (DEFAULT_OPSET, MIN_OPSET, ExportError, build_graph, export_onnx, nms_topk,
                          read_metadata, with_pre_nms_outputs)
from .parity import TOLERANCE, ParityReport, Tolerance

__all__ = ['DEFAULT_OPSET', 'ExportError', 'MIN_OPSET', 'OnnxDetector', 'ParityReport', 'TOLERANCE', 'Tolerance',
           'build_graph', 'check_parity', 'default_input_hw', 'export_detector', 'export_onnx', 'make_session',
           'match_detections', 'nms_topk', 'pytorch_predictions', 'read_metadata', 'use_onnxruntime',
           'with_pre_nms_outputs']
