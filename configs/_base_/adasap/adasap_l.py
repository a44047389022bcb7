# AdaSAP_L / HALP: what the latency-targeted recipe changes in the AdaSAP pruning phase, the one place it is
# written down: HALP's latency-saliency knapsack ranking over HALP's raw first-order Taylor importance (a loss
# estimate, comparable across layers; docs/pruning.md, "Targets and rankings").
# Used as the second base of a latency config (`_base_ = ['./<detector>_adasap_flops50.py',
# '../_base_/adasap/adasap_l.py']`), which takes it with `_base_.pop('adasap_l_pruning')` into
# default_hooks.adasap.pruning (the pop keeps this helper key out of the run's config) and sets what depends on
# the deployment machine: target=dict(type='latency', ratio=..., batch=..., device=..., threads=...) and the
# latency_table built there (tools/build_latency_table.py).
adasap_l_pruning = dict(ranking='knapsack', importance=dict(_delete_=True, type='taylor', normalize=None))
