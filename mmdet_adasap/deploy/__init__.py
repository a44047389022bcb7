"""Deployment: ONNX export with post-processing inside the graph, and ONNX Runtime evaluation."""
from .api import check_parity, default_input_hw, export_detector, pytorch_predictions
from .onnx_detector import OnnxDetector, make_session, use_onnxruntime
from .onnx_export import (DEFAULT_OPSET, MIN_OPSET, ExportError, build_graph, export_onnx, nms_topk,
                          read_metadata)
from .parity import match_detections

__all__ = ['DEFAULT_OPSET', 'ExportError', 'MIN_OPSET', 'OnnxDetector', 'build_graph', 'check_parity',
           'default_input_hw', 'export_detector', 'export_onnx', 'make_session', 'match_detections', 'nms_topk',
           'pytorch_predictions', 'read_metadata', 'use_onnxruntime']
