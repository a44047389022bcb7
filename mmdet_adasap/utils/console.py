"""What a long job shows on the terminal, and what goes only to the run's log file.

Every mmengine Runner logs its environment block and its whole config (~650 lines) to the console, and the
comparison harness builds one Runner per training and one per evaluated set: a matrix's terminal drowned the
progress lines and tables a user reads. mmengine has no switch for this (the console handler of its logger takes
the Runner's ``log_level``, the same as the log file's), so :func:`console_to_file` moves it instead: while it is
active, ``sys.stdout`` is a log file (the console handler of every MMLogger built meanwhile binds to it, and those
of the loggers that already exist are pointed at it), while :func:`echo` still reaches the terminal the block was
entered from. :class:`EchoHandler` lets a few chosen log lines (a hook's pruning steps) through to the terminal.
Nothing is lost: mmengine's own log file in the work dir keeps every line as before, and the redirected console
output is appended to the file the caller names.
"""
import contextlib
import logging
import sys
from typing import Iterator, List, Sequence, TextIO

from mmengine.logging import MMLogger

_TERMINALS: List[TextIO] = []  # the terminal of each active console_to_file, innermost last


def terminal() -> TextIO:
    """The stream :func:`echo` writes to: the terminal outside any :func:`console_to_file` block."""
    return _TERMINALS[-1] if _TERMINALS else sys.stdout


def echo(message: str) -> None:
    """Print a line for the user: on the terminal even inside :func:`console_to_file`."""
    print(message, file=terminal(), flush=True)


def _console_handlers(stream: TextIO) -> List[logging.StreamHandler]:
    return [h for logger in MMLogger._instance_dict.values() for h in logger.handlers
            if type(h) is logging.StreamHandler and h.stream is stream]


@contextlib.contextmanager
def console_to_file(path: str) -> Iterator[None]:
    """Send mmengine's console output (and any other print) to ``path`` (appended) while the block runs."""
    outer = sys.stdout
    with open(path, 'a', encoding='utf-8') as log:
        moved = _console_handlers(outer)
        for h in moved:
            h.setStream(log)
        _TERMINALS.append(terminal())
        try:
            with contextlib.redirect_stdout(log):
                yield
        finally:
            _TERMINALS.pop()
            for h in moved + _console_handlers(log):  # and those of the loggers built in the block
                h.setStream(outer)


class EchoHandler(logging.Handler):
    """A log handler that echoes the records whose message starts with one of ``prefixes`` to the terminal."""

    def __init__(self, prefixes: Sequence[str], format_line=lambda msg: msg):
        super().__init__(logging.INFO)
        self.prefixes, self.format_line = tuple(prefixes), format_line

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith(self.prefixes):
            echo(self.format_line(msg.split('\n')[0]))
