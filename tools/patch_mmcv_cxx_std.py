"""Switch mmcv 2.1.0's C++ standard flag from c++17 to c++20 in its ``setup.py``.

Why: torch >= 2.10 headers refuse to compile below C++20 (``#error C++20 or later compatible compiler is
required to use ATen``) and mmcv 2.1.0 hard-codes ``-std=c++17`` for non-Windows builds. This is the only
change made to mmcv's source.
"""
import re
import sys
from pathlib import Path


def patch(setup_py: Path) -> int:
    text = setup_py.read_text()
    new, count = re.subn(r"-std=c\+\+17", "-std=c++20", text)
    if count == 0 and "-std=c++20" not in text:
        raise SystemExit(f'{setup_py}: no "-std=c++17" flag found; is this mmcv 2.1.0?')
    setup_py.write_text(new)
    return count


if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit('usage: patch_mmcv_cxx_std.py PATH/TO/mmcv/setup.py')
    print(f'[patch_mmcv_cxx_std] replaced {patch(Path(sys.argv[1]))} flag(s)')
