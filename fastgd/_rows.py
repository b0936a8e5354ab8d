"""Host-side passes over the rows of a large array, split across a few threads.

Checking that ``X`` is finite, and copying it into memory a jax CPU device can use as it
is, are plain passes over memory. numpy releases the GIL while it sums or copies, so
splitting such a pass by rows over one thread per core runs it at the machine's memory
bandwidth instead of one core's: on a 2-core VM, the finite check of a 160 MB ``X`` takes
7 ms instead of 11, its copy 19 ms instead of 28. Arrays under :data:`MIN_PARALLEL_BYTES`
are done in the calling thread (threads would cost more than they save). The epochs'
orders are drawn on the same threads (:mod:`fastgd.permutations`), with a smaller share
per thread: drawing them computes more per byte than a read.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

__all__ = [
    "MIN_PARALLEL_BYTES",
    "usable_cpus",
    "row_ranges",
    "map_row_ranges",
    "staging_buffer",
    "release_staging",
]

T = TypeVar("T")

#: Smallest array split across threads, and the smallest share a thread is given.
MIN_PARALLEL_BYTES = 16 * 2**20

#: Most threads a pass is split across (beyond it, memory bandwidth is the limit anyway).
MAX_THREADS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def usable_cpus() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _thread_count() -> int:
    """Threads a large pass is split across: one per usable core, at most MAX_THREADS."""
    return min(usable_cpus(), MAX_THREADS)


def _forget_pool_after_fork() -> None:
    """In a forked child the pool's threads do not exist: start a new pool when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _thread_pool() -> ThreadPoolExecutor:
    """The process's pool of worker threads, created on first use (again after a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=_thread_count(), thread_name_prefix="fastgd-rows"
            )
        return _pool


def row_ranges(a: np.ndarray, min_bytes: int = MIN_PARALLEL_BYTES) -> list[tuple[int, int]]:
    """Split ``range(a.shape[0])`` into at most one contiguous range per usable core.

    Parameters
    ----------
    a : ndarray, shape (n, ...)
        The array to be split by its first axis.
    min_bytes : int
        The smallest share of ``a`` a range is given (a pass that computes more per byte
        than a plain read repays threads on smaller arrays).

    Returns
    -------
    list of (start, stop)
        Consecutive, non-empty, covering every row; a single range when ``a`` is smaller
        than ``min_bytes`` or has fewer than two rows.
    """
    n = a.shape[0]
    parts = min(_thread_count(), max(1, a.nbytes // min_bytes), max(n, 1))
    bounds = np.linspace(0, n, parts + 1).round().astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def map_row_ranges(
    func: Callable[[int, int], T], a: np.ndarray, min_bytes: int = MIN_PARALLEL_BYTES
) -> list[T]:
    """``[func(start, stop) for (start, stop) in row_ranges(a, min_bytes)]``, run on
    worker threads.

    ``func`` must only touch rows ``start:stop`` of the arrays it works on (the ranges do
    not overlap, so no two threads write the same memory). Exceptions propagate.
    """
    ranges = row_ranges(a, min_bytes)
    if len(ranges) == 1:
        return [func(*ranges[0])]
    return list(_thread_pool().map(lambda r: func(*r), ranges))


#: Smallest buffer :func:`staging_buffer` maps itself (below it, numpy's allocator).
MIN_MAPPED_BYTES = 4 * 2**20

#: Mappings the staging pool keeps for reuse (the most recently used ones): a jax fit on
#: a CPU stages X and its epoch orders, and jax lets go of the buffers of a fit only at its
#: next transfer, after the next fit has staged its own; four cover two fits.
STAGING_KEEP = 4

_staging: list[mmap.mmap] = []
_staging_lock = threading.Lock()


def _free_positions() -> list[int]:
    """Positions in the pool of the mappings no array uses (the pool's reference and
    ``getrefcount``'s argument are then the only ones)."""
    return [i for i in range(len(_staging)) if sys.getrefcount(_staging[i]) == 2]


def _new_mapping(nbytes: int) -> mmap.mmap:
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        mapping.madvise(mmap.MADV_HUGEPAGE)
    return mapping


def _pooled_mapping(nbytes: int) -> mmap.mmap:
    """A mapping of ``nbytes`` no array uses: a kept one if there is one, else a new one.

    The pool keeps the :data:`STAGING_KEEP` most recently handed-out mappings; older
    ones it forgets once free (they are unmapped then).
    """
    with _staging_lock:
        free = [i for i in _free_positions() if len(_staging[i]) == nbytes]
        mapping = _staging.pop(free[-1]) if free else _new_mapping(nbytes)
        _staging.append(mapping)  # most recently used last
        surplus = len(_staging) - STAGING_KEEP
        for i in reversed(_free_positions()[:max(surplus, 0)]):
            del _staging[i]
        return mapping


def staging_buffer(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array with a page-aligned buffer, to be filled by the caller.

    What fastgd copies a large array into for jax's CPU device (which uses a buffer as it
    is when it starts at a 64-byte boundary). Large buffers are anonymous mappings that
    are kept and handed out again once no array uses them (at most
    :data:`STAGING_KEEP` are kept; :func:`release_staging` lets them go). Fresh memory
    is slow and, on a virtual machine, unpredictably so: filling 160 MB of pages this
    process had never touched took 12 to 180 ms from one call to the next on the 2-core
    VM fastgd is tested on (the same page faults each time; the difference is how the
    hypervisor backs the pages), against a steady 11 ms for pages used before. Huge
    pages (``MADV_HUGEPAGE``, on Linux) make the first fill cheaper.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
        Of ``shape`` and ``dtype``; its contents are undefined (zeros when below
        :data:`MIN_MAPPED_BYTES`, then 64-byte aligned).
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if nbytes < MIN_MAPPED_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        buffer = np.zeros(nbytes + 64, dtype=np.uint8)
        offset = -buffer.ctypes.data % 64
        return buffer[offset : offset + nbytes].view(dtype).reshape(shape)
    mapping = _pooled_mapping(-(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE)
    return np.frombuffer(mapping, dtype=dtype, count=count).reshape(shape)


def release_staging() -> None:
    """Let go of the kept staging buffers (each is unmapped once no array uses it)."""
    with _staging_lock:
        _staging.clear()
