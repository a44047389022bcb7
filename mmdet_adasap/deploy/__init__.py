"""Deployment: ONNX export with post-processing inside the graph, and ONNX Runtime evaluation."""
from .api import check_parity, default_input_hw, export_detector, pytorch_predictions
from .kept_sets import match_detections
from .onnx_detector import OnnxDetector, make_session, use_onnxruntime
from .onnx_export import (DEFAULT_OPSET, MIN_OPSET, ExportError, build_graph, export_onnx, nms_topk,
                          read_metadata, with_pre_nms_outputs)
from .parity import TOLERANCE, ParityReport, Tolerance
from .quantize import (CalibrationImages, QuantizeError, accuracy_check, calibration_images, network_nodes,
                       onnx_clean_map, quantize_detector, quantized_summary)

__all__ = ['CalibrationImages', 'DEFAULT_OPSET', 'ExportError', 'MIN_OPSET', 'OnnxDetector', 'ParityReport',
           'QuantizeError', 'TOLERANCE', 'Tolerance', 'accuracy_check', 'build_graph', 'calibration_images',
           'check_parity', 'default_input_hw', 'export_detector', 'export_onnx', 'make_session',
           'match_detections', 'network_nodes', 'nms_topk', 'onnx_clean_map', 'pytorch_predictions',
           'quantize_detector', 'quantized_summary', 'read_metadata', 'use_onnxruntime', 'with_pre_nms_outputs']
