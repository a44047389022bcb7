# The AdaSAP recipe (the method), the one place its phases are written down:
#   phase 1, warm-up:   ASAM whose per-channel radius follows the L2 importance, rho_max for the least important
#                       channel down to rho_min for the most important one
#   phase 2, pruning:   HALP-style exponential steps down to the target (global L2 ranking), the adaptive radius
#                       continuing on the channels still alive
#   phase 3, fine-tune: uniform ASAM (rho 0.5) on the pruned network
# Used as the second base of a method config (`_base_ = ['<dense detector config>', '../_base_/adasap/adasap.py']`),
# which takes the hook with `__adasap = _base_.pop('adasap_hook')` and puts it in default_hooks (a dict, so that
# variants override single fields). The pop keeps this helper key out of the run's config: mmengine forbids the
# same top-level key in two bases, so a fragment cannot define default_hooks next to the detector's own.
# The method config sets what depends on the detector: the phase ends (epochs, or iterations with by_epoch=False),
# the number of pruning steps, the target, the optimizer (SAMOptimWrapper) and the schedule.
adasap_hook = dict(
    type='AdaSAPHook',
    warmup=dict(end=1, sharpness=dict(radius=dict(type='AdaptiveRadius', rho_min=0.01, rho_max=2.0),
                                      rho=0.5, adaptive=True)),
    pruning=dict(end=4, target=dict(type='flops', ratio=0.5), importance='l2',
                 schedule=dict(type='exponential', steps=30), round_to=8),
    finetune=dict(sharpness=dict(rho=0.5, adaptive=True)),
    export='pruned.pth')
