"""Matrix configs: the shipped ones load, the search split never touches test, and bad matrices are refused
naming the offending method, ratio or key (no model is built here)."""
import os.path as osp

import pytest

from conftest import REPO
from mmdet_adasap.apis import load_config
from mmdet_adasap.experiments import load_matrix
from mmdet_adasap.experiments.compare import check_methods

MATRIX = osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_matrix.py')
SEARCH = osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_search.py')
FINAL = osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_final.py')


def _ids(root, year, split):
    with open(osp.join(root, year, 'ImageSets', 'Main', f'{split}.txt')) as f:
        return {f'{year}/{line.strip()}' for line in f if line.strip()}


def test_val_split_trains_without_the_images_it_is_judged_on(tiny_voc):
    m = load_matrix(MATRIX)
    assert [r.name for r in m.runs('test')][:4] == ['l2prune_sgd/ratio0.5/seed11', 'sam_asam/ratio0.5/seed11',
                                                   'adasap/ratio0.5/seed11', 'adasap_taylor/ratio0.5/seed11']
    assert not set(m.seeds['val']) & set(m.seeds['test']), 'the final table never reuses a search seed'
    at04 = sorted({r.method for r in m.runs('test') if r.ratio == 0.4})
    assert at04 == ['adasap', 'l2prune_sgd'] and len(m.runs('test')) == (4 * 2 + 2) * 3
    for config in (m.dense_config, m.methods['adasap'].config):
        cfg = load_config(osp.join(REPO, config), m.splits['val'])
        train = [(d.data_prefix.sub_data_root.strip('/'), osp.basename(d.ann_file)[:-4])
                 for d in cfg.train_dataloader.dataset.datasets]
        judged = [(cfg[k].dataset.data_prefix.sub_data_root.strip('/'), osp.basename(cfg[k].dataset.ann_file)[:-4])
                  for k in ('val_dataloader', 'test_dataloader')]
        assert judged == [('VOC2007', 'val')] * 2
        seen = set().union(*(_ids(tiny_voc, y, s) for y, s in train))
        assert seen and not seen & _ids(tiny_voc, 'VOC2007', 'val') and not seen & _ids(tiny_voc, 'VOC2007', 'test')
    shipped = load_config(osp.join(REPO, m.dense_config))
    assert shipped.val_dataloader.dataset.ann_file.endswith('test.txt'), 'why the search needs its own split'


def test_search_gives_every_method_the_same_budget():
    """Round 1: 3 settings of each family's own knobs; round 2: L2 + SGD's winning lr (0.02) for the two others."""
    m = load_matrix(SEARCH)
    assert m.ratios == [0.5] and len(m.methods) == 11
    families = {}
    for name, method in m.methods.items():
        families.setdefault(method.config, []).append(name)
    assert sorted(len(v) for v in families.values()) == [3, 4, 4]
    for names in families.values():
        lrs = [m.methods[n].cfg_options.get('optim_wrapper.optimizer.lr') for n in names]
        assert lrs.count(0.02) == 1, names
    assert m.runs('val')[0].split == 'val' and len(m.runs('val')) == 11 * len(m.seeds['val'])


def test_final_table_trains_on_the_search_images_and_reports_test_with_new_seeds():
    m = load_matrix(FINAL)
    search = load_matrix(SEARCH)
    assert sorted(m.methods) == ['adasap', 'l2prune_sgd', 'sam_asam'] and m.ratios == [0.5]
    assert len(m.runs('test')) == 9 and not set(m.seeds['test']) & set(search.seeds['val'])
    assert m.dense_checkpoint == 'work_dirs/compare_val/dense/epoch_40.pth'  # the search's own dense start
    cfg = load_config(osp.join(REPO, m.methods['adasap'].config), m.splits['test'])
    val = load_config(osp.join(REPO, m.methods['adasap'].config), search.splits['val'])
    assert cfg.train_dataloader.dataset.datasets == val.train_dataloader.dataset.datasets
    assert cfg.test_dataloader.dataset.ann_file.endswith('VOC2007/ImageSets/Main/test.txt')
    assert cfg.optim_wrapper.optimizer.lr == 0.02  # the search's choice, in the shipped config


@pytest.mark.parametrize('overrides, message', [
    ({'methods.adasap.config': 'configs/adasap/nope.py'}, r"the config 'configs/adasap/nope.py' of method 'adasap'"),
    ({'methods.adasap.config': None}, r"method 'adasap' has no config"),
    ({'ratios': [0.5, 1.0]}, r'ratio 1.0 is not a fraction'),
    ({'methods.adasap.ratios': [0.5, 0.3]}, r"method 'adasap' asks for ratio\(s\) \[0.3\] that are not in"),
    ({'reference': 'mine'}, r"reference 'mine' is not one of the methods"),
    ({'seeds.extra': [1]}, r"seeds must be a dict split -> list of seeds with the splits of `splits` "
                           r"\(\['test', 'val'\]\)"),
    ({'evaluation.severities': [3, 7]}, r'7'),
    ({'evaluation.corruptions': ['fogg']}, r'fogg'),
    ({'evaluation.colour': 1}, r"unknown evaluation key\(s\) \['colour'\]"),
    ({'budget': 1}, r"unknown key\(s\) \['budget'\]"),
])
def test_bad_matrix_is_refused_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_matrix(MATRIX, overrides)


def test_adasap_taylor_method_prunes_with_taylor_importance(tiny_voc, tmp_path):
    """The method table's Taylor variant: a real 3-iteration run (warm-up, pruning, fine-tune) that exports."""
    import torch
    from mmengine.runner import Runner

    from helpers import shrink_adasap_for_smoke_test
    from mmdet_adasap.pruning import TaylorImportance
    torch.set_num_threads(1)
    m = load_matrix(MATRIX)
    cfg = shrink_adasap_for_smoke_test(load_config(osp.join(REPO, m.methods['adasap_taylor'].config)), tiny_voc,
                                       str(tmp_path), (1, 1, 1), samples=4)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert isinstance(runner.adasap_pruner.importance, TaylorImportance)
    assert runner.message_hub.get_scalar('train/flops_ratio').current() <= 0.5  # dense-relative, also after the switch
    assert osp.isfile(tmp_path / 'pruned.pth')


def test_compare_matrix_pairs_each_kind_and_its_controls_differ_only_by_the_pruning_hook():
    m = load_matrix(osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_compare.py'))
    search = load_matrix(SEARCH)
    assert m.references == dict(flops='adasap', latency='adasap_l', control='control_asam')
    assert {k: v.kind for k, v in m.methods.items() if v.kind != 'flops'} == dict(
        adasap_l='latency', halp_sgd='latency', control_sgd='control', control_asam='control')
    assert all(v.end_of_pruning == [0.25] for v in m.methods.values() if v.kind == 'flops')
    assert m.seeds['test'] == [11, 12, 13, 14, 15] and not set(m.seeds['test']) & set(search.seeds['val'])
    assert m.evaluation['severities'] == [3] and len(m.runs('test')) == (4 * 2 + 2 + 2) * 5
    ada_l, halp = (load_config(osp.join(REPO, m.methods[k].config), m.methods[k].cfg_options).to_dict()
                   for k in ('adasap_l', 'halp_sgd'))  # the latency pair differs only by its optimizer
    assert m.methods['adasap_l'].ratios == m.methods['halp_sgd'].ratios == [0.53]
    assert ada_l['default_hooks']['adasap']['pruning'] == halp['default_hooks']['adasap']['pruning']
    assert ada_l['default_hooks']['adasap']['pruning']['target']['batch'] == 1
    assert halp['optim_wrapper']['type'] == 'OptimWrapper' and ada_l['optim_wrapper']['type'] == 'SAMOptimWrapper'
    for cfg in (ada_l, halp):
        del cfg['optim_wrapper'], cfg['work_dir'], cfg['default_hooks']['adasap']['warmup'], \
            cfg['default_hooks']['adasap']['finetune']
    assert ada_l == halp
    assert m.methods['adasap_every5'].cfg_options['optim_wrapper.sam_interval'] == 5
    pruning = load_config(osp.join(REPO, m.methods['l2prune_sgd'].config)).to_dict()
    control = load_config(osp.join(REPO, m.methods['control_sgd'].config)).to_dict()
    del pruning['default_hooks']['adasap']
    assert {k: v for k, v in pruning.items() if k not in ('load_from', 'work_dir')} == \
        {k: v for k, v in control.items() if k not in ('load_from', 'work_dir')}
    asam = load_config(osp.join(REPO, m.methods['control_asam'].config))
    assert (asam.optim_wrapper.type, asam.optim_wrapper.rho, asam.optim_wrapper.adaptive) == \
        ('SAMOptimWrapper', 0.5, True)


def test_rtmdet_matrix_compares_the_three_methods_on_one_trained_rtmdet_start():
    """The second detector family: the RTMDet-tiny matrix trains its own dense start once, and its three methods
    share the AdaSAP config's pruning phase and detector, differing only in their sharpness steps."""
    m = load_matrix(osp.join(REPO, 'configs/compare/rtmdet-tiny_synthvoc_compare50.py'))
    check_methods(m)
    assert m.dense_config.endswith('configs/rtmdet/rtmdet-tiny_synthvoc_dense.py') and m.dense_checkpoint is None
    assert set(m.methods) == {'l2prune_sgd', 'sam_asam', 'adasap'} and len(m.runs('test')) == 3 * 3
    assert m.seeds['test'] == [11, 12, 13] and all(v.end_of_pruning == [0.5] for v in m.methods.values())
    cfgs = {k: load_config(osp.join(REPO, v.config), v.cfg_options).to_dict() for k, v in m.methods.items()}
    warm = {k: c['default_hooks']['adasap']['warmup'].get('sharpness') for k, c in cfgs.items()}
    assert warm['l2prune_sgd'] is None and warm['sam_asam'] == dict(rho=0.05, adaptive=False)
    assert warm['adasap']['radius']['type'] == 'AdaptiveRadius'
    for c in cfgs.values():
        assert c['model']['type'] == 'RTMDet' and c['default_hooks']['adasap']['pruning']['target']['ratio'] == 0.5
        del c['optim_wrapper'], c['work_dir'], c['default_hooks']['adasap']['warmup'], \
            c['default_hooks']['adasap']['finetune']
    assert cfgs['adasap'] == cfgs['sam_asam'] == cfgs['l2prune_sgd']
