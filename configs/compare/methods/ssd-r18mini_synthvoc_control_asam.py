# Control, no pruning: the SGD control's 6 epochs with the fine-tune's uniform ASAM (rho 0.5) in every step. If
# this buys no corruption robustness over the SGD control, no sharpness-aware pruning can show much here.
_base_ = './ssd-r18mini_synthvoc_control_sgd.py'
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.5, adaptive=True)
