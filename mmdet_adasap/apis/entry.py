"""The console scripts of an installed package (``mmdet-adasap-train CONFIG ...``; setup.py lists them).

Each one runs the shipped tool script itself (``mmdet_adasap/.mim/tools/<name>.py`` in a wheel, the clone's
``tools/<name>.py`` in an editable install), exactly as ``python tools/<name>.py`` does from a clone: the tools
stay the one place their command line is written, and a pip-installed user gets them without a clone.
"""
import runpy
import sys
from typing import Callable, Optional, Sequence

from ..shipped import tool_path


def run_shipped_tool(name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Run ``tools/<name>.py`` as ``__main__`` with the arguments ``argv`` (default: this process's own)."""
    path = tool_path(name)
    sys.argv = [path, *(sys.argv[1:] if argv is None else argv)]
    runpy.run_path(path, run_name='__main__')


def _console_script(name: str) -> Callable[[], None]:
    def main() -> None:
        run_shipped_tool(name)
    main.__name__ = main.__qualname__ = name
    main.__doc__ = f'``mmdet-adasap-...``: runs the shipped ``tools/{name}.py``.'
    return main


train = _console_script('train')
test = _console_script('test')
prune = _console_script('prune')
prune_report = _console_script('prune_report')
test_robustness = _console_script('test_robustness')
make_voc_c = _console_script('make_voc_c')
export_onnx = _console_script('export_onnx')
quantize_onnx = _console_script('quantize_onnx')
make_synthetic_voc = _console_script('make_synthetic_voc')
voc_to_coco = _console_script('voc_to_coco')
compare_methods = _console_script('compare_methods')
neuron_sensitivity = _console_script('neuron_sensitivity')
deploy_report = _console_script('deploy_report')
build_latency_table = _console_script('build_latency_table')
