"""Training-loop pieces: the sharpness-aware optim wrappers, their radius policies, and the AdaSAP phase hook."""
from .hooks import *  # noqa: F401,F403  (registers AdaSAPHook)
from .optim_wrappers import *  # noqa: F401,F403  (registers SAMOptimWrapper, AmpSAMOptimWrapper, radius policies)
from .hooks import __all__ as _hooks_all
from .optim_wrappers import __all__ as _optim_all

__all__ = _hooks_all + _optim_all
