"""AdaSAP (adaptive sharpness-aware pruning) for MMDetection 3.x.

Importing this package (directly or via ``custom_imports=dict(imports=['mmdet_adasap'])``) applies the
upstream fixes in :mod:`mmdet_adasap.upstream_fixes` and registers every module in mmdet's registries.
"""
from . import upstream_fixes

upstream_fixes.apply_all()

from . import datasets, engine, pruning, robustness, structures  # noqa: E402,F401  (registers modules)

__version__ = '0.2.0'


def amp_variant_of(optim_wrapper_type: str) -> str:
    """The mixed-precision counterpart of an optim wrapper type (used by ``tools/train.py --amp``)."""
    return {'OptimWrapper': 'AmpOptimWrapper',
            'SAMOptimWrapper': 'AmpSAMOptimWrapper'}.get(optim_wrapper_type, optim_wrapper_type)
