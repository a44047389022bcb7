"""Corruption robustness (VOC-C / Pascal-C protocol): catalogue, cached rendering, on-the-fly transform,
evaluation loops, P / mPC / rPC aggregation and reports."""
from .aggregate import check_comparable, summarize
from .api import evaluate_robustness
from .corruptions import (ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_GROUPS, HOLDOUT_CORRUPTIONS,
                          SEVERITIES, corrupt_image, corruption_group, resolve_corruptions)
from .loop import RobustnessTestLoop, RobustnessValLoop
from .metric import VOCPerClassMetric
from .report import load_result, write_comparison, write_reports
from .transforms import LoadCorruptedImageFromFile
from .voc_c import render_voc_c

__all__ = ['ALL_CORRUPTIONS', 'BENCHMARK_CORRUPTIONS', 'CORRUPTION_GROUPS', 'HOLDOUT_CORRUPTIONS', 'SEVERITIES',
           'LoadCorruptedImageFromFile', 'RobustnessTestLoop', 'RobustnessValLoop', 'VOCPerClassMetric',
           'check_comparable', 'corrupt_image', 'corruption_group', 'evaluate_robustness', 'load_result',
           'render_voc_c', 'resolve_corruptions', 'summarize', 'write_comparison', 'write_reports']
