"""AdaSAP (adaptive sharpness-aware pruning) for MMDetection 3.x.

Importing this package (directly or via ``custom_imports=dict(imports=['mmdet_adasap'])``) applies the
upstream fixes in :mod:`mmdet_adasap.upstream_fixes`, registers every module in mmdet's registries and adds the
plugin's hooks to every Runner (:mod:`mmdet_adasap.engine.plugin_hooks`).
"""
from .stack import check_stack

check_stack()  # an mmengine / mmcv / mmdet outside the supported range: one message naming both

from . import upstream_fixes  # noqa: E402

upstream_fixes.apply_all()

from . import datasets, engine, models, pruning, robustness, structures  # noqa: E402,F401  (registers modules)
from .engine import plugin_hooks  # noqa: E402

plugin_hooks.install()

__version__ = '0.10.0'

from .shipped import config_path, shipped_configs  # noqa: E402  (a user config's `_base_`, docs/plugin.md)


from .utils.renamed import refuse_renamed  # noqa: E402

__getattr__ = refuse_renamed(__name__, {'amp_variant_of': 'mmdet_adasap.engine.optim_wrappers.amp_variant_of'})
