"""Refusing a public name that was renamed or moved, with a message naming the new one."""
from typing import Callable, Dict


class RenamedError(ImportError):
    """A renamed or moved public name was used. An ``ImportError`` so that ``from module import old_name`` shows
    this message (Python replaces an ``AttributeError`` raised there with its own, which names no successor)."""


def refuse_renamed(module: str, renamed: Dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that refuses each old name in ``renamed`` (old name -> where it lives now) and
    raises the usual ``AttributeError`` for any other missing name."""

    def __getattr__(name: str):
        if name in renamed:
            raise RenamedError(f'{module}.{name} was renamed: use {renamed[name]}')
        raise AttributeError(f'module {module!r} has no attribute {name!r}')
    return __getattr__
