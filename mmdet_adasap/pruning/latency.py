"""Refused: this module was split by concept. The timing function lives in :mod:`mmdet_adasap.utils.timing`,
the lookup table (fingerprint, checks, prediction, load / save) in :mod:`mmdet_adasap.pruning.latency_table`,
its measurement and calibration in :mod:`mmdet_adasap.pruning.latency_measure`."""
from ..utils.renamed import RenamedError

raise RenamedError(
    'mmdet_adasap.pruning.latency was split: time_round_robin / steady_allocator -> mmdet_adasap.utils.timing; '
    'model_call -> mmdet_adasap.pruning.channel_groups; fingerprint, check_table, interpolate, predict_modules, '
    'table_terms, load_table, save_table -> mmdet_adasap.pruning.latency_table; measure_latency_table, '
    'fit_calibration, fit_affine, fit_curve -> mmdet_adasap.pruning.latency_measure')
