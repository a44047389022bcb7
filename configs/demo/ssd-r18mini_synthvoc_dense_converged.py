# The dense start of the method comparison (configs/compare/*_matrix.py): the demo SSD trained until its val mAP
# stops improving (the shipped 22 epochs are sized for `make demo`, not for convergence). Its length is decided
# on the val split only: the matrix trains it there first and logs val mAP every 4 epochs; the last epoch is used.
_base_ = './ssd-r18mini_synthvoc_dense.py'
max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=150),
                   dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=5e-4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=1, save_best=None))  # the last epoch, not a best
