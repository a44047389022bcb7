"""No function over 80 lines (from ``def`` to its last line) in the package or its tools."""
import ast

from package_graph import PACKAGE, functions

LIMIT = 80


def test_the_measure_counts_def_to_last_line(tmp_path):
    tree = ast.parse('def f():\n' + '    x = 1\n' * 81 + 'def g():\n    pass\n')
    node_f, node_g = tree.body
    assert node_f.end_lineno - node_f.lineno + 1 == 82 and node_g.end_lineno - node_g.lineno + 1 == 2


def test_no_function_over_80_lines():
    long = [f'{path}: {name} ({lines} lines)' for path, name, lines in functions(PACKAGE, 'tools') if lines > LIMIT]
    assert not long, f'functions over {LIMIT} lines (split them):\n' + '\n'.join(long)
