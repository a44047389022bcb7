"""Corruption robustness (VOC-C / Pascal-C protocol): catalogue, cached rendering, on-the-fly transform,
evaluation loops, the result (schema, P / mPC / rPC summary, comparability) and reports."""
from .api import evaluate_robustness
from .corruptions import (ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_GROUPS, HOLDOUT_CORRUPTIONS,
                          SEVERITIES, corrupt_image, corruption_group, resolve_corruptions)
from .loop import RobustnessTestLoop, RobustnessValLoop
from .metric import VOCPerClassMetric
from .report import write_comparison, write_reports
from .result import RESULT_SCHEMA, build_result, check_comparable, load_result, summarize
from .transforms import LoadCorruptedImageFromFile
from .voc_c import render_coco_c, render_voc_c

__all__ = ['ALL_CORRUPTIONS', 'BENCHMARK_CORRUPTIONS', 'CORRUPTION_GROUPS', 'HOLDOUT_CORRUPTIONS', 'SEVERITIES',
           'LoadCorruptedImageFromFile', 'RESULT_SCHEMA', 'RobustnessTestLoop', 'RobustnessValLoop',
           'VOCPerClassMetric', 'build_result', 'check_comparable', 'corrupt_image', 'corruption_group',
           'evaluate_robustness', 'load_result', 'render_coco_c', 'render_voc_c', 'resolve_corruptions', 'summarize',
           'write_comparison', 'write_reports']
