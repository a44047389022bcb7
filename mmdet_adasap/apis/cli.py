"""What every shipped tool shares: the mm-style arguments (mmdet's tools repeat these in each script), one error
style and one way to exit.

Errors: a tool's ``main`` raises; :func:`run_tool` prints the project's errors (and mmengine's config errors) as
one ``error:`` line and exits 1, so that a user reads the message that names the fix rather than a traceback
around it; ``--debug`` (or ``ADASAP_DEBUG=1``) lets the traceback through.

Exit of a multi-process run (``dist_train.sh``, ``dist_test.sh``, ``dist_launch.sh``): torch's gloo process group
runs every collective on worker threads (``pt_gloo_runloop``) that drop their last reference to a finished
collective's tensors a moment after the caller's ``wait()`` returns. Those tensors are Python-owned (mmengine's
final ``broadcast_object_list`` of the metrics), so the drop takes the GIL. When it falls after the interpreter
has begun finalising, Python ends the worker with ``pthread_exit``, the forced unwind meets a ``noexcept`` C++
destructor, and a rank that finished and wrote its results aborts: ``terminate called without an active
exception`` (SIGABRT), about 1 run in 10 of a 2-process evaluation, more on a loaded machine (core dump: the
worker in ``ProcessGroupGloo::runLoop`` -> ``~AsyncBroadcastWork`` -> ``decref`` -> ``take_gil`` ->
``PyThread_exit_thread``; the main thread in ``Py_FinalizeEx``). The threads cannot be stopped first:
``destroy_process_group()`` joins them only when nothing else holds the group, and mmengine's
``MMDistributedDataParallel`` wrapper (around every model of a distributed run, testing included) keeps it for
the life of the process (its ``shutdown()`` / ``abort()`` leave them running too). So :func:`exit_process` ends
such a process the way ``torchrun`` workers are meant to end: a barrier (every rank done, and this rank's
workers past the collectives before it), the exit handlers (``atexit``: logging, temp files), flushed streams,
then ``os._exit`` without tearing the interpreter down under the live threads. mmdet's own ``tools/train.py``
and ``tools/test.py`` still exit the plain way.
"""
import argparse
import atexit
import os
import sys
from typing import Callable, NoReturn, Optional

import torch.distributed as torch_dist

from mmengine.config import DictAction

#: errors that are the user's input or environment: printed as they are (anything else gets its type in front)
INPUT_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError, NotImplementedError, SyntaxError)


class ToolParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the ``--debug`` flag every tool takes (read by :func:`run_tool`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='show the traceback of an error instead of one line (also ADASAP_DEBUG=1)')


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (lists as key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (dist_train.sh / dist_test.sh pass "pytorch")')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_common(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def debug_requested(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get('ADASAP_DEBUG', '') not in ('', '0')


def error_line(err: BaseException) -> str:
    """``error: <message>``; an error that is not about the user's input also names its type and ``--debug``."""
    text = str(err).strip() or '(no message)'
    if isinstance(err, KeyError) and err.args:  # str(KeyError) is the repr of its key
        text = str(err.args[0])
    if isinstance(err, INPUT_ERRORS):
        return f'error: {text}'
    return f'error: {type(err).__name__}: {text} (--debug shows the traceback)'


def exit_process(status: int) -> NoReturn:
    """``sys.exit(status)``, or in a process that runs torch.distributed the clean exit the module docstring
    describes (the barrier only after success: after an error the other ranks may never reach it)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        sys.exit(status)
    if status == 0:
        torch_dist.barrier()
    atexit._run_exitfuncs()  # what Py_FinalizeEx would run first, while everything is still in place
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def run_tool(main: Callable[[], Optional[int]]) -> NoReturn:
    """Run a tool's ``main`` as a command: its return value is the exit status; an exception is one ``error:``
    line on stderr and exit status 1 (the traceback with ``--debug``); Ctrl-C is left to Python. The process
    ends through :func:`exit_process`."""
    try:
        status = main()
    except SystemExit as done:  # a tool's own `raise SystemExit('error: ...')`, argparse's usage errors
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        status = done.code if isinstance(done.code, int) else int(done.code is not None)
    except Exception as err:  # noqa: BLE001  (every error of a command becomes its one line)
        if debug_requested():
            raise
        print(error_line(err), file=sys.stderr)
        status = 1
    exit_process(status or 0)
