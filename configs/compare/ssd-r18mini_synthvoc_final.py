# The final table of the method comparison: the recipes the val search chose (docs/results/demo/
# search_val/), each from the search's own dense start, trained on the search's training images (VOC2007 train
# + VOC2012 trainval) with seeds the search never used, reported on VOC2007 test, which neither the dense
# start's schedule nor the search looked at. The wider matrix (ssd-r18mini_synthvoc_matrix.py: 0.4 / 0.25,
# Taylor, a dense start retrained on trainval) is the same command on more of this CPU's hours.
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_search.py --out work_dirs/compare_val --split val
#   python tools/compare_methods.py configs/compare/ssd-r18mini_synthvoc_final.py --out work_dirs/compare_test
_base_ = './ssd-r18mini_synthvoc_matrix.py'
dense = dict(checkpoint='work_dirs/compare_val/dense/epoch_40.pth')  # the search's dense start (its last epoch)
ratios = [0.5]
methods = dict(
    _delete_=True,
    l2prune_sgd=dict(config='configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py', label='L2 + SGD'),
    sam_asam=dict(config='configs/adasap/ssd-r18mini_synthvoc_sam_asam_flops50.py', label='SAM warm-up + ASAM'),
    adasap=dict(config='configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py', label='AdaSAP (L2)'))
splits = dict(test={'train_dataloader.dataset.datasets.0.ann_file': 'VOC2007/ImageSets/Main/train.txt'})
evaluation = dict(cache_root='data/synthetic_voc_c')  # tools/make_voc_c.py ... --split test --severities 1 3 5
