"""Training-loop pieces: the sharpness-aware optim wrappers and their radius policies."""
from .optim_wrappers import *  # noqa: F401,F403  (registers SAMOptimWrapper, AmpSAMOptimWrapper, radius policies)
from .optim_wrappers import __all__  # noqa: F401
