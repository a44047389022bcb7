# Soft-prune the trained demo detector to 50% of its FLOPs while fine-tuning (AdaSAP's removal phase with the
# plain optimizer): HALP's exponential schedule, 5 steps 50 iterations apart, global L2 ranking, channel counts
# in multiples of 8. Masks live in every checkpoint; after training the physically pruned detector is written
# to work_dir/pruned.pth, which configs/pruned/ssd-r18mini_synthvoc_pruned.py loads.
_base_ = '../demo/ssd-r18mini_synthvoc_dense.py'
load_from = 'work_dirs/demo_dense/epoch_22.pth'  # fill in: the dense checkpoint (tools/train.py on the demo config)

max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=3)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
custom_hooks = [
    dict(type='PruningHook', target=dict(type='flops', ratio=0.5), importance='l2',
         schedule=dict(type='exponential', steps=5, interval=50, start=0), round_to=8, ranking='global',
         input_shape=(1, 3, 256, 256), export='pruned.pth'),
]
