"""Collect the code blocks of the README and docs/ pages, and the checks that keep them true.

A fenced block's info string says what the suite does with it:

* ```` ```python runnable ````: executed as it stands (a fresh namespace, the repository as working directory);
  tracebacks point at the Markdown file's own line numbers;
* ```` ```python config ````: a config fragment, merged onto a shipped config (its own ``_base_ = '...'`` line,
  else the demo's dense config), loaded by mmengine and built: the model, the optim wrapper, every hook; every
  other ``dict(type=...)`` in it has its keywords bound against the registered class's signature;
* ```` ```bash ````: every command line that runs a tool (``python tools/X.py``, ``bash tools/X.sh``,
  ``make X``, an installed console script ``mmdet-adasap-X``) must name an existing file or target, every ``--option`` must be one the tool's argparse parser
  knows, and every ``configs/...py`` path must exist;
* ```` ```text ```` (or no info string): prose layout, not checked. A ``python`` block with neither tag is an
  error, so that no Python in the docs escapes the suite.
"""
import argparse
import ast
import inspect
import os.path as osp
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from glob import glob
from typing import List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_BASE = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
FENCE = re.compile(r'^(\s*)```(.*)$')


@dataclass
class Block:
    path: str    # relative to the repository
    line: int    # 1-based line of the first code line
    lang: str
    tags: tuple
    code: str

    @property
    def where(self) -> str:
        return f'{self.path}:{self.line}'


def doc_files() -> List[str]:
    """README.md, CHANGELOG.md and every page under docs/ (the generated records under docs/results/*/ excluded)."""
    pages = ['README.md', 'CHANGELOG.md'] + sorted(glob('docs/*.md', root_dir=REPO))
    return [p for p in pages if osp.isfile(osp.join(REPO, p))]


def blocks(path: str) -> List[Block]:
    out, cur = [], None
    with open(osp.join(REPO, path), encoding='utf-8') as f:
        lines = f.read().split('\n')
    for i, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if not m:
            if cur is not None:
                cur[3].append(line[len(cur[4]):] if line.startswith(cur[4]) else line)
            continue
        if cur is None:
            words = m.group(2).split()
            cur = (words[0] if words else '', tuple(words[1:]), i + 1, [], m.group(1))
        else:
            out.append(Block(path, cur[2], cur[0], cur[1], '\n'.join(cur[3])))
            cur = None
    if cur is not None:
        raise ValueError(f'{path}:{cur[2] - 1}: unclosed code fence')
    return out


def all_blocks(lang=None) -> List[Block]:
    found = [b for p in doc_files() for b in blocks(p)]
    return [b for b in found if lang is None or b.lang == lang]


def compiled(block: Block):
    """The block's code compiled so that tracebacks and syntax errors carry the Markdown file's line numbers."""
    return compile('\n' * (block.line - 1) + block.code, osp.join(REPO, block.path), 'exec')


# ---------------------------------------------------------------- config fragments

def fragment_bases(block: Block) -> List[str]:
    """The shipped config(s) a fragment is merged onto: its own ``_base_ = '...'`` line, else the demo's dense
    config (absolute paths)."""
    tree = ast.parse(block.code)
    node = next((n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, 'id', None) == '_base_' for t in n.targets)), None)
    base = DEFAULT_BASE if node is None else base_value(node)
    bases = [base] if isinstance(base, str) else list(base)
    for b in bases:
        if not osp.isfile(osp.join(REPO, b)):
            raise FileNotFoundError(f'{block.where}: _base_ {b!r} is not a shipped config')
    return [osp.join(REPO, b) for b in bases]


def base_value(node: ast.expr):
    """A ``_base_`` value: a literal, or an expression mmengine evaluates the same way (``eval`` of the
    expression alone), e.g. ``__import__('mmdet_adasap').config_path(...)`` (docs/plugin.md)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(compile(ast.Expression(node), '<_base_>', 'eval'))


def config_from_fragment(block: Block, tmp_dir: str):
    """Write the fragment onto its base (``_base_`` line or the demo's dense config) and load it."""
    from mmengine.config import Config
    tree = ast.parse(block.code)
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)]
    bases = fragment_bases(block)
    if '_base_' in names:
        code = re.sub(r"^_base_\s*=.*$", f'_base_ = {bases!r}', block.code, count=1, flags=re.M)
    else:
        code = f'_base_ = {bases[0]!r}\n' + block.code
    path = osp.join(tmp_dir, f'{osp.basename(block.path)}_{block.line}.py')
    with open(path, 'w') as f:
        f.write(code)
    # mmengine keeps no `__name` (a helper such as `__adasap = _base_.pop('adasap_hook')`) in the config
    return Config.fromfile(path), [n for n in names if n != '_base_' and not n.startswith('__')]


def inherited_type_dicts(block: Block) -> list:
    """Every ``dict(type=...)`` of the fragment's base config(s). A fragment's dict equal to one of them is the
    shipped config's own (e.g. a model copied whole with ``{{_base_.model}}``, whose norm and NMS settings are
    not keywords of a registered class) and is not bound again; what the fragment writes itself is."""
    from mmengine.config import Config
    return [d for b in fragment_bases(block) for _, d in type_dicts(Config.fromfile(b).to_dict())]


def registered_class(type_name):
    """The class a ``type=`` names in mmdet's scope (any of its registries, then mmengine's), or None."""
    from mmdet import registry as mmdet_reg
    from mmengine import registry as mme_reg
    if not isinstance(type_name, str):
        return type_name if inspect.isclass(type_name) else None
    for mod in (mmdet_reg, mme_reg):
        for name in dir(mod):
            reg = getattr(mod, name)
            if isinstance(reg, mme_reg.Registry):
                cls = reg.get(type_name)
                if cls is not None:
                    return cls
    return None


def type_dicts(node, trail=''):
    """(key path, dict) for every dict with a ``type`` key inside ``node``."""
    if isinstance(node, dict):
        if 'type' in node:
            yield trail, node
        for k, v in node.items():
            yield from type_dicts(v, f'{trail}.{k}' if trail else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from type_dicts(v, f'{trail}[{i}]')


def bind_check(where, trail, d):
    """Bind a ``dict(type=...)``'s keywords against the registered class's ``__init__`` (a renamed or unknown
    keyword fails, naming the snippet's file and line)."""
    if trail.endswith('.target') or trail.endswith('.schedule'):
        return _pruning_spec_check(where, trail, d)
    cls = registered_class(d['type'])
    if cls is None:
        raise AssertionError(f'{where}: {trail}: type {d["type"]!r} is not registered in mmdet or mmengine')
    kwargs = {k: v for k, v in d.items() if k != 'type' and not (k.startswith('_') and k.endswith('_'))}
    try:
        inspect.signature(cls).bind_partial(**kwargs)
    except TypeError as e:
        raise AssertionError(f'{where}: {trail}: {cls.__name__}{inspect.signature(cls)} does not take '
                             f'{sorted(kwargs)}: {e}') from None


def _pruning_spec_check(where, trail, d):
    """A pruning target or schedule is a plain dict (not a registry type): check it the way the pruner reads it."""
    from mmdet_adasap.pruning import build_schedule
    from mmdet_adasap.pruning.targets import COST_TYPES, LATENCY_KEYS
    spec = {k: v for k, v in d.items() if not (k.startswith('_') and k.endswith('_'))}
    try:
        if trail.endswith('.schedule'):
            build_schedule(dict(spec), ratio=0.5)
            return
        unknown = set(spec) - {'type', 'ratio', *LATENCY_KEYS}
        if spec['type'] not in COST_TYPES or unknown:
            raise ValueError(f'type must be one of {COST_TYPES} and keys among type, ratio, {LATENCY_KEYS}')
    except (TypeError, ValueError) as e:
        raise AssertionError(f'{where}: {trail}: {d}: {e}') from None


# ---------------------------------------------------------------- bash command lines

class _Parser(BaseException):  # not an Exception: the tools' run_tool turns those into their error line
    def __init__(self, parser):
        self.parser = parser


def tool_parser(tool: str) -> argparse.ArgumentParser:
    """The argparse parser a tool builds, captured at its first ``parse_args`` call (nothing else runs)."""
    real = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def capture(self, *a, **k):
        raise _Parser(self)

    argv = sys.argv
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = capture
    sys.argv = [tool]
    try:
        runpy.run_path(osp.join(REPO, tool), run_name='__main__')
    except _Parser as got:
        return got.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = real
        sys.argv = argv
    raise AssertionError(f'{tool} returned without calling argparse: its options cannot be checked')


def parser_options(parser) -> set:
    opts = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                opts |= parser_options(sub)
    return opts


def command_lines(block: Block):
    """(line number, text) of each logical command line: continuations joined, comments dropped."""
    out, pending, start = [], '', None
    for i, raw in enumerate(block.code.split('\n')):
        line = re.sub(r'(^|\s)#.*$', '', raw).rstrip()
        if start is None:
            start = block.line + i
        if line.endswith('\\'):
            pending += line[:-1] + ' '
            continue
        text = (pending + line).strip()
        if text:
            out.append((start, text))
        pending, start = '', None
    return out


def tool_calls(text: str, variables: dict):
    """Split one command line into tool invocations: (kind, target, tokens after it)."""
    for var, val in variables.items():
        text = text.replace(f'${var}', val).replace(f'${{{var}}}', val)
    calls = []
    for part in re.split(r'\s*(?:&&|;|\|\|)\s*', text):
        try:
            toks = shlex.split(part)
        except ValueError:
            toks = part.split()
        while toks and re.match(r'^[A-Z_][A-Z0-9_]*=', toks[0]):   # VAR=value prefixes
            toks = toks[1:]
        if len(toks) >= 2 and re.match(r'^(python3?|\.venv/bin/python)$', toks[0]) and toks[1].endswith('.py'):
            calls.append(('python', toks[1], toks[2:]))
        elif len(toks) >= 2 and toks[0] == 'bash' and toks[1].endswith('.sh'):
            calls.append(('bash', toks[1], toks[2:]))
        elif toks and toks[0] == 'make':
            calls.append(('make', toks[1] if len(toks) > 1 else '', toks[2:]))
        elif toks and toks[0].startswith('mmdet-adasap-'):  # an installed console script runs its tool
            tool = console_scripts().get(toks[0][len('mmdet-adasap-'):], f'<no console script {toks[0]}>')
            calls.append(('python', f'tools/{tool}.py', toks[1:]))
    return calls


def console_scripts() -> dict:
    """setup.py's ``CONSOLE_SCRIPTS``: ``mmdet-adasap-<name>`` -> the tool (``tools/<tool>.py``) it runs."""
    with open(osp.join(REPO, 'setup.py')) as f:
        tree = ast.parse(f.read())
    return next(ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'CONSOLE_SCRIPTS')


def assignments(block: Block) -> dict:
    """Shell variables a block sets on a line of their own (``V=...; M=...``), for substitution."""
    found = {}
    for _, text in command_lines(block):
        for part in re.split(r'\s*;\s*', text):
            m = re.match(r'^([A-Z_][A-Z0-9_]*)=(\S+)$', part.strip())
            if m:
                found[m.group(1)] = m.group(2).strip('"\'')
    return found


def option_tokens(tokens):
    """The ``--long-option`` names among a command's tokens (usage notation such as ``[--a N|b]`` allowed)."""
    out = []
    for t in tokens:
        for piece in re.split(r'[\[\]|()]', t):
            if piece.startswith('--') and len(piece) > 2:
                out.append(piece.split('=')[0])
    return out


def config_paths(tokens):
    return [p for t in tokens for p in re.findall(r'configs/[\w./-]+\.py', t)]


def make_targets() -> set:
    with open(osp.join(REPO, 'Makefile')) as f:
        return set(re.findall(r'^([\w-]+):', f.read(), flags=re.M))


# ---------------------------------------------------------------- calls in inline code

INLINE = re.compile(r'(?<!`)`([^`\n]+)`(?!`)')
API_MODULES = ('mmdet_adasap.apis', 'mmdet_adasap.pruning', 'mmdet_adasap.engine', 'mmdet_adasap.robustness',
               'mmdet_adasap.deploy', 'mmdet_adasap.experiments', 'mmdet_adasap.analysis',
               'mmdet_adasap.structures', 'mmdet_adasap.datasets')


def inline_calls(path: str):
    """(line, code) of every inline code span in prose that is a call: ``Name(...)``, ``mod.func(...)`` or
    ``dict(type=...)`` (``...`` stands for any value)."""
    with open(osp.join(REPO, path), encoding='utf-8') as f:
        text = f.read()
    text = re.sub(r'```.*?```', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    out = []
    for n, line in enumerate(text.split('\n'), 1):
        for code in INLINE.findall(line):
            try:
                node = ast.parse(code.replace('...', 'None'), mode='eval').body
            except SyntaxError:
                continue
            if isinstance(node, ast.Call):
                out.append((n, code, node))
    return out


def api_object(dotted: str):
    """The package object a call names (``ChannelPruner``, ``pruner.prune_to`` is not resolvable: None)."""
    import importlib
    head, _, attr = dotted.rpartition('.')
    if head.startswith('mmdet_adasap'):
        return getattr(importlib.import_module(head), attr, None)
    for mod in API_MODULES:
        obj = getattr(importlib.import_module(mod), dotted, None)
        if obj is not None:
            return obj
    return registered_class(dotted) if '.' not in dotted else None


def check_inline_call(where: str, code: str, node: ast.Call):
    """Bind an inline call's keywords against what it names; ``dict(type=...)`` against the registered type."""
    def literal(v):
        try:
            return ast.literal_eval(v)
        except ValueError:
            return None
    kwargs = {k.arg: literal(k.value) for k in node.keywords if k.arg}
    name = ast.unparse(node.func)
    if name == 'dict':
        if isinstance(kwargs.get('type'), str) and registered_class(kwargs['type']) is not None:
            bind_check(where, code, kwargs)
        return
    obj = api_object(name)
    if obj is None or not callable(obj):
        return
    try:
        inspect.signature(obj).bind_partial(*[None] * len(node.args), **kwargs)
    except TypeError as e:
        raise AssertionError(f'{where}: `{code}`: {name}{inspect.signature(obj)}: {e}') from None
    if inspect.isclass(obj) and 'scope' in kwargs and hasattr(obj, 'SCOPES'):
        assert kwargs['scope'] in obj.SCOPES, f'{where}: `{code}`: scope must be one of {obj.SCOPES}'
