"""The package's modules and their imports, read with ``ast`` (nothing is imported): what the structure tests
check (import cycles, function-local imports and their reasons, function lengths, timing loops)."""
import ast
import os
import os.path as osp
from typing import Dict, Iterator, List, Set, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGE = 'mmdet_adasap'


def python_files(*dirs: str) -> Iterator[str]:
    """Every ``.py`` file under ``dirs`` (relative to the repository root), as repository-relative paths."""
    for d in dirs:
        for base, subdirs, files in os.walk(osp.join(ROOT, d)):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith(('.', '__pycache__')))
            for f in sorted(files):
                if f.endswith('.py'):
                    yield osp.relpath(osp.join(base, f), ROOT)


def module_name(path: str) -> str:
    """``mmdet_adasap/pruning/targets.py`` -> ``mmdet_adasap.pruning.targets`` (a package: its ``__init__``)."""
    parts = path[:-3].split(os.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def parse(path: str) -> ast.Module:
    with open(osp.join(ROOT, path)) as f:
        return ast.parse(f.read(), filename=path)


def _parents(tree: ast.AST) -> Dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def in_function(node: ast.AST, parents: Dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _resolve(path: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved against ``path``)."""
    if not node.level:
        return node.module or ''
    package = module_name(path).split('.')
    if not path.endswith('__init__.py'):
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def imports(path: str, modules: Set[str]) -> List[Tuple[str, int, bool]]:
    """(imported package module, line, function-local) for each import of a module in ``modules`` in ``path``;
    ``from pkg import sub`` names the submodule ``pkg.sub`` where that is a module."""
    tree = parse(path)
    parents = _parents(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node)
            targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base for a in node.names]
        else:
            continue
        local = in_function(node, parents)
        for t in dict.fromkeys(targets):
            if t in modules:
                out.append((t, node.lineno, local))
    return out


def import_graph() -> Dict[str, Dict[str, List[Tuple[int, bool]]]]:
    """module -> {imported module: [(line, function-local)]} among the package's own modules."""
    paths = {module_name(p): p for p in python_files(PACKAGE)}
    graph = {m: {} for m in paths}
    for m, p in paths.items():
        for target, line, local in imports(p, set(paths)):
            if target != m:
                graph[m].setdefault(target, []).append((line, local))
    return graph


def cycles(graph: Dict[str, Dict[str, list]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def local_imports(*dirs: str) -> Iterator[Tuple[str, int, str]]:
    """(path, line, source line) of every import inside a function under ``dirs``."""
    for path in python_files(*dirs):
        tree = parse(path)
        parents = _parents(tree)
        with open(osp.join(ROOT, path)) as f:
            lines = f.read().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and in_function(node, parents):
                yield path, node.lineno, lines[node.lineno - 1]


def has_reason(path: str, line: int) -> bool:
    """An import carries a reason: a ``#`` comment on its line or, for a run of consecutive imports, on the run's
    first line, or a comment line right above the run."""
    with open(osp.join(ROOT, path)) as f:
        lines = f.read().splitlines()
    i = line - 1
    while True:
        text = lines[i]
        if '#' in text:
            return True
        above = lines[i - 1].strip() if i else ''
        if above.startswith('#'):
            return True
        if above.startswith(('import ', 'from ')):
            i -= 1
            continue
        return False


def functions(*dirs: str) -> Iterator[Tuple[str, str, int]]:
    """(path, qualified name, lines from ``def`` to its last line) of every function under ``dirs``."""
    for path in python_files(*dirs):
        tree = parse(path)

        def walk(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = prefix + child.name
                    yield path, name, child.end_lineno - child.lineno + 1
                    yield from walk(child, name + '.')
                elif isinstance(child, ast.ClassDef):
                    yield from walk(child, prefix + child.name + '.')
                else:
                    yield from walk(child, prefix)
        yield from walk(tree, '')


#: names of clocks: ``time.perf_counter()``, ``time.process_time()``, ``time.time()``, ... or a variable ``clock``
CLOCKS = ('perf_counter', 'perf_counter_ns', 'process_time', 'process_time_ns', 'monotonic', 'monotonic_ns',
          'time', 'clock')


def _is_clock(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr in CLOCKS) or (isinstance(f, ast.Name) and f.id in CLOCKS)


def _elapsed(node: ast.AST) -> bool:
    """``clock() - t0`` somewhere in ``node``."""
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub) and (_is_clock(n.left) or _is_clock(n.right))
               for n in ast.walk(node))


def timing_loops(tree: ast.AST) -> List[Tuple[int, str]]:
    """(line, why) of each place that times calls itself: a loop that collects elapsed times (appends or adds
    up ``clock() - t0``), or an elapsed time taken beside ``torch.cuda.synchronize`` (a latency measurement)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While)):
            for n in ast.walk(node):
                collects = ((isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                             and n.func.attr in ('append', 'extend') and any(_elapsed(a) for a in n.args))
                            or (isinstance(n, ast.AugAssign) and _elapsed(n.value)))
                if collects:
                    found.append((node.lineno, 'a loop collecting elapsed times'))
                    break
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _elapsed(node):
            syncs = any(isinstance(n, ast.Attribute) and n.attr == 'synchronize' for n in ast.walk(node))
            if syncs:
                found.append((node.lineno, f'{node.name}: an elapsed time beside torch.cuda.synchronize'))
    return sorted(set(found))
