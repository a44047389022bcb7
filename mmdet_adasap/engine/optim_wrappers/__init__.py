from .amp_sam_optim_wrapper import AmpSAMOptimWrapper, amp_variant_of
from .perturbation import PerturbationPlan, norm_stat_buffers
from .radius_policy import AdaptiveRadius, RadiusPolicy, UniformRadius, build_radius_policy
from .sam_optim_wrapper import SAMOptimWrapper

__all__ = ['SAMOptimWrapper', 'AmpSAMOptimWrapper', 'amp_variant_of', 'RadiusPolicy', 'UniformRadius', 'AdaptiveRadius',
           'build_radius_policy', 'PerturbationPlan', 'norm_stat_buffers']
