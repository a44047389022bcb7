# The demo detector trained with ASAM (two-pass sharpness-aware step, uniform radius): the dense config with the
# optim wrapper swapped. Same base optimizer (SGD), schedule and data; about 2x the training time.
# Works unchanged on one process and under dist_train.sh (stock MMDistributedDataParallel, no model_wrapper_cfg).
_base_ = './ssd-r18mini_synthvoc_dense.py'

optim_wrapper = dict(type='SAMOptimWrapper', rho=0.5, adaptive=True, eta=0.01)
