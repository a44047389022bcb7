# The method comparison on the demo detector (tools/compare_methods.py): every method x target FLOPs ratio x seed,
# each run from ONE fixed dense checkpoint through the ordinary Runner, evaluated with one protocol.
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_matrix.py --out work_dirs/compare [--split val]
# Add a method: a config (usually a 3-5 line _base_ override of a method config) plus optional cfg_options;
# the target ratio is set through `ratio_key`, the seed through `randomness.seed` (data order, augmentation).
dense = dict(config='configs/demo/ssd-r18mini_synthvoc_dense_converged.py',
             checkpoint=None)  # None: trained once into OUT/dense/ on the split of OUT (its last epoch is the start)
pruned_config = 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'  # loads an exported pruned.pth for evaluation
methods = dict(
    l2prune_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py', label='L2 + SGD'),
    sam_asam=dict(config='configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py', label='SAM warm-up + ASAM',
                  ratios=[0.5, 0.25]),  # 0.4 (the paper's size) for the key pair only: the 6-hour budget
    adasap=dict(config='configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py', label='AdaSAP (L2)'),
    adasap_taylor=dict(config='configs/compare/methods/ssd-r18mini_synthvoc_adasap_taylor_flops50.py',
                       label='AdaSAP (Taylor)', ratios=[0.5, 0.25]),
)
reference = 'adasap'  # the paired differences are reference - each other method, seed by seed
ratio_key = 'default_hooks.adasap.pruning.target.ratio'
ratios = [0.5, 0.4, 0.25]
seeds = dict(test=[11, 12, 13], val=[1, 2])  # the final table never reuses a search seed
# val: the search split (train on VOC2007 train + VOC2012 trainval, judge on VOC2007 val, test never seen);
# test: the shipped split (train on VOC2007+2012 trainval, report VOC2007 test). Applied to the dense
# training, every run and the evaluation.
_train = 'train_dataloader.dataset.datasets.'
splits = dict(
    test={'train_cfg.val_interval': 10 ** 6},  # test is never looked at while training (only the evaluation)
    val={_train + '0.ann_file': 'VOC2007/ImageSets/Main/train.txt',
         'val_dataloader.dataset.ann_file': 'VOC2007/ImageSets/Main/val.txt',
         'test_dataloader.dataset.ann_file': 'VOC2007/ImageSets/Main/val.txt',
         'default_hooks.checkpoint.max_keep_ckpts': -1})  # keeps each warm-up's end for tools/neuron_sensitivity.py
evaluation = dict(
    corruptions='benchmark', unseen='holdout', severities=[1, 3, 5],  # unseen: reported apart, never in mPC
    cache_root=None,  # a VOC-C cache from tools/make_voc_c.py (rendered once; None: corrupt on the fly)
    latency=dict(repeats=30, threads=1),  # median batch-1 CPU latency, pruned and dense interleaved
    cfg_options=dict(),  # e.g. the test dataloader's data_root
    category_ratio=0.5)  # the ratio of the per-corruption-category bar plot
