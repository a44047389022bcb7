"""Every code block of the README and docs/ is run, built or checked against the code it names
(how each kind is collected: ``doc_snippets``); a failure names the Markdown file and line."""
import os.path as osp
import traceback

import pytest

from doc_snippets import (REPO, Block, all_blocks, check_inline_call, doc_files, inline_calls, assignments, bind_check, command_lines, compiled,
                          config_from_fragment, config_paths, inherited_type_dicts, registered_class, make_targets, option_tokens, parser_options,
                          tool_calls, tool_parser, type_dicts)

PYTHON = all_blocks('python')
RUNNABLE = [b for b in PYTHON if 'runnable' in b.tags]
CONFIG = [b for b in PYTHON if 'config' in b.tags]
BASH = all_blocks('bash')
_parsers = {}


def test_docs_have_blocks_of_every_kind():
    assert RUNNABLE and CONFIG and BASH


@pytest.mark.parametrize('block', PYTHON, ids=lambda b: b.where)
def test_python_block_is_tagged_runnable_or_config(block):
    assert set(block.tags) & {'runnable', 'config'}, (
        f'{block.where}: a ```python block must be tagged `python runnable` (executed) or `python config` '
        f'(merged onto a shipped config and built), got tags {block.tags}')


@pytest.mark.parametrize('block', RUNNABLE, ids=lambda b: b.where)
def test_runnable_block_runs(block, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(compiled(block), {'__name__': 'doc_snippet'})


def _build(block, tmp_path):
    from mmdet.registry import HOOKS, MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    cfg, names = config_from_fragment(block, str(tmp_path))
    init_default_scope('mmdet')
    inherited = inherited_type_dicts(block)
    for name in names:
        for trail, d in type_dicts(cfg.to_dict()[name], name):
            if d not in inherited:
                bind_check(block.where, trail, d)
    model = MODELS.build(cfg.model)
    if 'optim_wrapper' in names:
        build_optim_wrapper(model, cfg.optim_wrapper)
    hooks = [h for h in (cfg.get('default_hooks') or {}).values() if h] + list(cfg.get('custom_hooks') or [])
    for h in hooks:  # this package's hooks are built (they check their options); mmdet's were bound above
        if registered_class(h['type']).__module__.startswith('mmdet_adasap'):
            HOOKS.build(h)
    return cfg


@pytest.mark.parametrize('block', CONFIG, ids=lambda b: b.where)
def test_config_block_builds(block, tmp_path):
    try:
        _build(block, tmp_path)
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f'{block.where}: config fragment does not build: {type(e).__name__}: {e}') from e


def _check_call(where, kind, target, tokens):
    if kind == 'make':
        assert target in make_targets(), f'{where}: `make {target}`: no such Makefile target'
        return
    assert osp.isfile(osp.join(REPO, target)), f'{where}: {target} does not exist'
    for path in config_paths(tokens):
        assert osp.isfile(osp.join(REPO, path)), f'{where}: {path} does not exist'
    if kind == 'python' and target.startswith('tools/'):
        if target not in _parsers:
            _parsers[target] = parser_options(tool_parser(target))
        unknown = [o for o in option_tokens(tokens) if o not in _parsers[target]]
        assert not unknown, (f'{where}: {target} has no option(s) {unknown}; '
                             f'it takes {sorted(o for o in _parsers[target] if o.startswith("--"))}')


@pytest.mark.parametrize('block', BASH, ids=lambda b: b.where)
def test_bash_block_names_real_tools_configs_and_options(block):
    variables = assignments(block)
    for line, text in command_lines(block):
        for kind, target, tokens in tool_calls(text, variables):
            _check_call(f'{block.path}:{line}', kind, target, tokens)


# ---- the checks themselves catch what they are for (a renamed argument fails, naming the file and line)

def test_renamed_keyword_in_a_config_fragment_fails_naming_file_and_line(tmp_path):
    block = Block('docs/method.md', 42, 'python', ('config',),
                  "optim_wrapper = dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.01),\n"
                  "    radius_policy=dict(type='AdaptiveRadius', rho_max=2.0, score_norm='max'))\n")
    with pytest.raises(AssertionError, match=r"docs/method\.md:42: optim_wrapper\.radius_policy: "
                                             r"AdaptiveRadius.*score_norm"):
        _build(block, tmp_path)


def test_a_model_copied_from_the_base_is_not_bound_again_but_the_fragments_own_dict_is(tmp_path):
    """``{{_base_.model}}`` copies the shipped model (its norm / NMS dicts are no class's keywords): it builds; a
    wrong keyword in the dict the fragment writes itself still fails, naming file and line."""
    own = "model = dict(_delete_=True, type='PrunedDetector', architecture={{_base_.model}}, %s=%r)\n"
    path = 'docs/results/demo/dense_start_flops50.channels.json'
    assert _build(Block('docs/x.md', 3, 'python', ('config',), own % ('channels', path)), tmp_path).model.channels
    with pytest.raises(AssertionError, match=r"docs/x\.md:3: model: PrunedDetector.*channel_file"):
        _build(Block('docs/x.md', 3, 'python', ('config',), own % ('channel_file', path)), tmp_path)


def test_renamed_keyword_in_a_runnable_block_fails_at_the_markdown_line():
    block = Block('README.md', 7, 'python', ('runnable',),
                  "from mmdet_adasap.engine import AdaptiveRadius\n"
                  "AdaptiveRadius(rho_max=2.0, scope='group')\n")
    with pytest.raises(ValueError, match='scope') as info:
        exec(compiled(block), {'__name__': 'doc_snippet'})
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(info.tb)]
    assert (osp.join(REPO, 'README.md'), 8) in frames


def test_unknown_tool_option_fails_naming_file_and_line():
    block = Block('docs/pruning.md', 10, 'bash', (),
                  'python tools/prune.py CONFIG DENSE.pth \\\n    --ratio 0.5 --no-such-option\n')
    with pytest.raises(AssertionError, match=r"docs/pruning\.md:10: tools/prune\.py has no option\(s\) "
                                             r"\['--no-such-option'\]"):
        test_bash_block_names_real_tools_configs_and_options(block)


def test_missing_tool_or_config_fails():
    for code, msg in (('python tools/nope.py X', 'tools/nope.py does not exist'),
                      ('python tools/prune.py configs/nope.py X', 'configs/nope.py does not exist'),
                      ('make nope', 'no such Makefile target')):
        with pytest.raises(AssertionError, match=msg):
            test_bash_block_names_real_tools_configs_and_options(Block('README.md', 3, 'bash', (), code))


def test_a_console_script_is_checked_as_the_tool_it_runs():
    """``mmdet-adasap-train ...`` (an installed console script, setup.py) takes tools/train.py's options."""
    check = test_bash_block_names_real_tools_configs_and_options
    check(Block('docs/plugin.md', 3, 'bash', (), 'mmdet-adasap-train configs/demo/ssd-r18mini_synthvoc_dense.py '
                                                 '--work-dir w --resume\n'))
    with pytest.raises(AssertionError, match=r"docs/plugin\.md:3: tools/train\.py has no option\(s\) \['--nope'\]"):
        check(Block('docs/plugin.md', 3, 'bash', (), 'mmdet-adasap-train CONFIG --nope\n'))
    with pytest.raises(AssertionError, match='no console script mmdet-adasap-nope'):
        check(Block('docs/plugin.md', 3, 'bash', (), 'mmdet-adasap-nope CONFIG\n'))


def test_command_lines_join_continuations_and_substitute_variables():
    block = Block('x.md', 5, 'bash', (), 'M=configs/a.py  # note\npython tools/t.py $M \\\n  --out d  # c\n')
    lines = command_lines(block)
    assert lines == [(5, 'M=configs/a.py'), (6, 'python tools/t.py $M    --out d')]
    assert tool_calls(lines[1][1], assignments(block)) == [('python', 'tools/t.py', ['configs/a.py', '--out', 'd'])]
    assert option_tokens(['[--batch', 'N|dynamic]', '--opset=17']) == ['--batch', '--opset']


@pytest.mark.parametrize('page', doc_files())
def test_inline_calls_match_the_code(page):
    """Calls written in prose (`AdaptiveRadius(rho_min, rho_max, scope)`, `dict(type='X', ...)`) name
    keywords the code takes."""
    for line, code, node in inline_calls(page):
        check_inline_call(f'{page}:{line}', code, node)


def test_an_inline_call_with_a_removed_keyword_fails():
    import ast as _ast
    code = "AdaptiveRadius(rho_min, rho_max, scope, score_norm='max')"
    node = _ast.parse(code, mode='eval').body
    with pytest.raises(AssertionError, match=r"docs/method\.md:9: .*score_norm"):
        check_inline_call('docs/method.md:9', code, node)
    code = "AdaptiveRadius(scope='group')"
    with pytest.raises(AssertionError, match="scope must be one of"):
        check_inline_call('README.md:1', code, _ast.parse(code, mode='eval').body)
