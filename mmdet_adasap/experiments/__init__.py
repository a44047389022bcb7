"""Experiments over many training runs: the method-comparison matrix (:mod:`.matrix`, :mod:`.compare`) with
its tables and plots (:mod:`.table`, :mod:`.plots`). Built on the ordinary Runner and the robustness result."""
from .compare import run_matrix
from .matrix import Matrix, RunSpec, load_matrix
from .table import write_results

__all__ = ['Matrix', 'RunSpec', 'load_matrix', 'run_matrix', 'write_results']
