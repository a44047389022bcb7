"""Raise mmcv 2.1.0's C++ standard from c++17 to c++20 in its ``setup.py``; nothing else is changed.

Why: torch >= 2.10 headers refuse to compile below C++20 (``#error C++20 or later compatible compiler is
required to use ATen``), and mmcv 2.1.0 hard-codes ``-std=c++17`` for the host compiler on non-Windows builds
(and for nvcc in CUDA builds, which include the same headers). The Windows (``/std:``) and macOS-MPS branches
are left alone.
"""
import sys
from pathlib import Path

# exact source lines of mmcv 2.1.0's setup.py (host compiler, then nvcc)
FLAG_LINES = (
    ("extra_compile_args['cxx'] = ['-std=c++17']", "extra_compile_args['cxx'] = ['-std=c++20']"),
    ("extra_compile_args['nvcc'] += ['-std=c++17']", "extra_compile_args['nvcc'] += ['-std=c++20']"),
)


def patch(setup_py: Path) -> int:
    text = setup_py.read_text()
    if FLAG_LINES[0][0] not in text and FLAG_LINES[0][1] not in text:
        raise SystemExit(f'{setup_py}: the line {FLAG_LINES[0][0]!r} is missing; is this mmcv 2.1.0?')
    count = 0
    for old, new in FLAG_LINES:
        count += text.count(old)
        text = text.replace(old, new)
    setup_py.write_text(text)
    return count


if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit('usage: patch_mmcv_cxx_std.py PATH/TO/mmcv-2.1.0/setup.py')
    print(f'[patch_mmcv_cxx_std] {patch(Path(sys.argv[1]))} flag line(s) set to -std=c++20')
