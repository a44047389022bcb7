"""The one way this package times anything: :func:`time_round_robin`.

Latency lookup tables, the in-graph module timings, the cost report, deployed PyTorch / ONNX Runtime timings
and every benchmark call it, so that all their milliseconds are measured under one discipline: the allocator's
thresholds fixed (:func:`steady_allocator`), warm-up rounds, the calls timed in turns (one call of each per
round, so that changes in machine load hit all of them alike and their *ratios* stay meaningful on a busy
machine), CUDA synchronised around each call where asked, and the median of the rounds.
"""
import contextlib
import statistics
import time
from typing import Callable, List, Sequence

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_steady = None


def steady_allocator() -> bool:
    """Fix glibc malloc's mmap and trim thresholds for the rest of this process (``mallopt``), so that a model's
    timing does not depend on what ran before it; True when set (glibc), False elsewhere.

    Why: glibc raises its mmap threshold each time a large block is freed, so whether a forward's activations
    (megabytes at batch 8) come from fresh, page-faulting mmaps or from the reused heap depends on the
    allocation history. Measured on the demo (CPU, 1 thread, batch 8): the same knapsack pick for a 0.6 latency
    target timed at 0.465 and 0.508 of dense in two round-robin runs, and at 0.592 and 0.598 with the thresholds
    fixed (``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296`` in the environment does the
    same), where the latency lookup table predicts 0.60. The price: freed memory is kept by the process, not
    returned.
    """
    global _steady
    if _steady is None:
        import ctypes  # only here: loading libc is needed once per process, on the first timing
        import ctypes.util
        try:
            libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
            _steady = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to fix
            _steady = False
    return _steady


def time_round_robin(fns: Sequence[Callable[[], object]], repeats: int = 10, warmup: int = 1,
                     sync: bool = False, clock: Callable[[], float] = time.perf_counter,
                     inference: bool = True) -> List[float]:
    """Median time (ms) of each ``fn()`` over ``repeats`` rounds, after ``warmup`` untimed rounds, timed in turns
    (one call of each per round); ``sync``: CUDA synchronised before and after each call, so that a call's
    kernels are charged to it; ``clock``: wall time (default) or e.g. ``time.process_time``; ``inference``: run
    under ``torch.inference_mode`` (False for calls that train). Fixes the allocator's thresholds first
    (:func:`steady_allocator`), so that no timing depends on the allocation history."""
    steady_allocator()
    sync_fn = torch.cuda.synchronize if sync else (lambda: None)
    times = [[] for _ in fns]
    with torch.inference_mode() if inference else contextlib.nullcontext():
        for _ in range(warmup):
            for fn in fns:
                fn()
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                sync_fn()
                t0 = clock()
                fn()
                sync_fn()
                times[i].append((clock() - t0) * 1e3)
    return [statistics.median(t) for t in times]
