"""The method configs take their phase recipes from configs/_base_/adasap/ (issue 31).

``tests/data/method_configs_before.json`` is every config in configs/adasap/, merged (``load_config(...).to_dict()``
minus work_dir, as canonical JSON), dumped from the configs as they were before the recipes moved into fragments.
Each config must still merge to exactly that: the refactor changed nothing a run sees, and an edit to a recipe
value (or to a method config) fails here until the fixture is rewritten on purpose:

    python tests/test_configs/test_recipe_fragments.py --write   # only for a change meant to change the runs
"""
import glob
import json
import os.path as osp
import re
import shutil
import sys

import pytest

from mmdet_adasap.apis import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'method_configs_before.json')
FRAGMENTS = osp.join(REPO, 'configs', '_base_', 'adasap')
METHOD_CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs', 'adasap', '*.py')))

# What a recipe is: its phase dicts and pruner choices, written once, in configs/_base_/adasap/.
RECIPE_PIECES = {
    "type='AdaSAPHook'": 'adasap.py',
    "type='AdaptiveRadius'": 'adasap.py',
    "finetune=dict(sharpness=dict(rho=0.5, adaptive=True))": 'adasap.py',
    "importance='l2'": 'adasap.py',
    "export='pruned.pth'": 'adasap.py',
    "ranking='knapsack'": 'adasap_l.py',
    "type='taylor'": 'adasap_l.py',
    "adaptive=False": 'sam_asam.py',
    "sharpness=None": 'l2prune_sgd.py',
}


def dump_config(path):
    """The merged config as a run sees it (minus work_dir, which follows the file name), canonical JSON."""
    cfg = load_config(path).to_dict()
    cfg.pop('work_dir', None)
    return json.loads(json.dumps(cfg, sort_keys=True, default=repr))


def dump_method_configs(config_dir=osp.join(REPO, 'configs', 'adasap')):
    return {osp.basename(p): dump_config(p) for p in sorted(glob.glob(osp.join(config_dir, '*.py')))}


def _code(path):
    """The file's text without comments (a header may name a recipe value)."""
    with open(path, encoding='utf-8') as f:
        return '\n'.join(line.split('#', 1)[0] for line in f)


@pytest.fixture(scope='module')
def before():
    with open(FIXTURE, encoding='utf-8') as f:
        return json.load(f)


def test_fixture_covers_every_method_config(before):
    assert sorted(before) == METHOD_CONFIGS


@pytest.mark.parametrize('name', METHOD_CONFIGS)
def test_config_merges_to_what_it_was_before_the_fragments(name, before):
    now = dump_config(osp.join(REPO, 'configs', 'adasap', name))
    assert set(now) == set(before[name]), 'top-level keys changed (a fragment helper key not popped?)'
    for key in sorted(now):
        assert now[key] == before[name][key], f'{name}: {key} differs from the dump before the refactor'


def test_recipes_are_written_only_in_the_fragments():
    fragments = {osp.basename(p): _code(p) for p in glob.glob(osp.join(FRAGMENTS, '*.py'))}
    assert set(fragments) == {'adasap.py', 'adasap_l.py', 'sam_asam.py', 'l2prune_sgd.py'}
    for piece, home in RECIPE_PIECES.items():
        assert [n for n, code in fragments.items() if piece in code] == [home], piece
    for name in METHOD_CONFIGS:
        code = _code(osp.join(REPO, 'configs', 'adasap', name))
        assert not [piece for piece in RECIPE_PIECES if piece in code], name
        assert not re.search(r'\bwarmup=dict\(end=|\bfinetune=dict\(', code), f'{name} spells out a phase'
        # every method config reaches its recipe through a fragment, directly or through the config it extends
        assert re.search(r"_base_\.pop\('(adasap_hook|adasap_l_pruning|sam_warmup_sharpness|l2prune_sgd_phases)'\)",
                         code) or re.search(r"^_base_ = '\./[^']+_flops50\.py'$", code, re.M), name


def test_an_edited_recipe_value_is_caught(tmp_path, before):
    """The fixture check sees the fragments: change AdaSAP's rho_max in a copy and the dump differs."""
    configs = tmp_path / 'configs'
    shutil.copytree(osp.join(REPO, 'configs'), configs)
    fragment = configs / '_base_' / 'adasap' / 'adasap.py'
    text = fragment.read_text(encoding='utf-8')
    assert text.count('rho_max=2.0') == 1
    fragment.write_text(text.replace('rho_max=2.0', 'rho_max=1.0'), encoding='utf-8')
    name = 'ssd-r18mini_synthvoc_adasap_flops25.py'  # reaches adasap.py through the flops50 config it extends
    edited = dump_config(str(configs / 'adasap' / name))
    assert edited['default_hooks']['adasap']['warmup']['sharpness']['radius']['rho_max'] == 1.0
    assert edited != before[name]


if __name__ == '__main__':  # rewrite the fixture: python tests/test_configs/test_recipe_fragments.py --write
    if sys.argv[1:] != ['--write']:
        sys.exit(__doc__)
    with open(FIXTURE, 'w', encoding='utf-8') as f:
        json.dump(dump_method_configs(), f, sort_keys=True, indent=1)
        f.write('\n')
    print(f'wrote {FIXTURE}')
