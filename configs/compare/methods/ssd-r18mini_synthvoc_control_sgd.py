# Control, no pruning: the dense start trained on for the pruning runs' 6 epochs with their plain-SGD settings
# (lr 0.02, cosine, a checkpoint every epoch), so that what pruning changes can be told from what more training does.
_base_ = '../../demo/ssd-r18mini_synthvoc_dense.py'
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
