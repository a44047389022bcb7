"""Imports run one way: no cycle among the package's modules (function-local imports counted), and every
function-local import says why it is not at the top (an optional or heavy dependency, a patched upstream
module)."""
from package_graph import PACKAGE, cycles, has_reason, import_graph, local_imports


def test_cycle_finder_finds_a_planted_cycle():
    graph = {'a': {'b': []}, 'b': {'c': []}, 'c': {'a': []}, 'd': {'a': []}}
    assert cycles(graph) == [['a', 'b', 'c']]
    assert cycles({'a': {'b': []}, 'b': {}}) == []


def test_the_graph_sees_function_local_and_relative_imports():
    graph = import_graph()
    # a relative import at the top of a module
    assert 'mmdet_adasap.pruning.channel_groups' in graph['mmdet_adasap.pruning.targets']
    # a package-internal function-local import is read too (the test below would see a cycle through one)
    assert all(isinstance(line, int) for edges in graph.values() for uses in edges.values() for line, _ in uses)


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    described = []
    for comp in found:
        ties = [f'{a} -> {b} (line {", ".join(str(l) + (" in a function" if local else "") for l, local in graph[a][b])})'
                for a in comp for b in graph[a] if b in comp]
        described.append('; '.join(ties))
    assert not found, 'import cycles among the package\'s modules:\n' + '\n'.join(described)


def test_function_local_imports_give_a_reason():
    missing = [f'{path}:{line}: {text.strip()}' for path, line, text in local_imports(PACKAGE)
               if not has_reason(path, line)]
    assert not missing, ('function-local imports without a reason comment (move them to the top, or say why '
                         'they must wait: an optional or heavy dependency):\n' + '\n'.join(missing))
