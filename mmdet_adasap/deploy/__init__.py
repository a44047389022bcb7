"""Deployment: ONNX export with post-processing inside the graph, and ONNX Runtime evaluation."""
from .onnx_export import (DEFAULT_OPSET, MIN_OPSET, ExportError, build_graph, export_onnx, nms_topk,
                          read_metadata)

__all__ = ['DEFAULT_OPSET', 'ExportError', 'MIN_OPSET', 'build_graph', 'export_onnx', 'nms_topk', 'read_metadata']
