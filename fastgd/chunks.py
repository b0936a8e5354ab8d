"""Chunked epochs: training on data larger than the memory budget.

When the rows of X (with their targets and weights) take more bytes than the memory
budget, :func:`fastgd.fit` walks each epoch in chunks of consecutive rows of at most the
budget: the chunks in a shuffled order (drawn in numpy, one permutation of the chunks per
epoch), the rows of each chunk shuffled within it. Each chunk is handed to the backend as
a view of X; when X is a ``np.memmap``, the operating system is asked to read the chunk's
pages in order first, and the next chunk's while this one trains (see
:class:`ChunkedRows`). Every backend walks the same batches, and the file is read
sequentially, not at random, without a copy of X in the process's memory.

What a batch is, with chunks:

- mini-batches and per-sample SGD: batches are cut within each chunk (the last batch of
  a chunk may be shorter), so the batches differ from an unchunked epoch's; with
  ``shuffle=False`` and chunks whose size is a multiple of the batch size they are the
  same;
- full batch: the gradient of every chunk is accumulated (weighted by its share of the
  rows) and the parameters are updated once per epoch: the same full-batch step as
  without chunks, up to the order of the additions.
"""

from __future__ import annotations

import math
import mmap
import os

import numpy as np

__all__ = ["ChunkedRows", "default_memory_budget", "rows_per_chunk"]

#: Share of the free memory the default budget takes.
_FREE_SHARE = 0.5


def _available_host_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the total physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_memory_budget(device_free_bytes: int | None = None) -> int:
    """Half of the free memory of the device (when given) or of the host, in bytes."""
    free = device_free_bytes if device_free_bytes is not None else _available_host_bytes()
    return max(1, int(_FREE_SHARE * free))


def rows_per_chunk(budget: int, bytes_per_row: int) -> int:
    """Rows of at most ``budget`` bytes (at least one)."""
    return max(1, budget // bytes_per_row)


def _file_map(X: np.ndarray) -> tuple[mmap.mmap, int] | None:
    """The ``mmap`` behind X (a ``np.memmap`` or a view of one) and the byte offset of X's
    first row in it, or None for X in memory."""
    base = X
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    mapped = getattr(base, "_mmap", None)
    if mapped is None or mapped.closed:
        return None
    start = np.frombuffer(mapped, dtype=np.uint8, count=1).ctypes.data
    return mapped, X.ctypes.data - start


class ChunkedRows:
    """The rows of (X, Y, weight) as chunks of consecutive rows, read in place.

    A chunk is a view of X. When X lives in a file (a ``np.memmap``), the operating
    system is asked (``madvise(MADV_WILLNEED)``) to read a chunk's pages sequentially
    before the chunk is used, and the next chunk's while it trains: the file is read in
    order, in the background, whatever order the rows are then visited in, and no copy
    of X is made (its pages are the page cache's, not the process's anonymous memory).

    Parameters
    ----------
    X : ndarray, shape (n, d)
        C-contiguous, possibly a ``np.memmap`` (or a view of one).
    Y : ndarray, shape (n, T)
    weight : ndarray of shape (n,) or None
    rows : int
        Rows per chunk (the last chunk may be shorter).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, weight: np.ndarray | None, rows: int):
        self.X, self.Y, self.weight = X, Y, weight
        self.n = X.shape[0]
        self.rows = rows
        self.n_chunks = math.ceil(self.n / rows)
        self._file = _file_map(X)

    def bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.rows
        return start, min(start + self.rows, self.n)

    def load(self, chunk: int, following: int | None = None):
        """Chunk ``chunk`` as views ``(X_rows, Y_rows, weight_rows)``; its pages and those
        of chunk ``following`` (the next one to train) are asked for, in order."""
        for wanted in (chunk, following):
            if wanted is not None:
                self._advise(*self.bounds(wanted))
        start, stop = self.bounds(chunk)
        weight = None if self.weight is None else self.weight[start:stop]
        return self.X[start:stop], self.Y[start:stop], weight

    def _advise(self, start: int, stop: int) -> None:
        """Ask the operating system to read rows ``start..stop-1`` of a file-backed X."""
        if self._file is None or not hasattr(mmap, "MADV_WILLNEED"):
            return
        mapped, offset = self._file
        row_bytes = self.X.strides[0]
        first = offset + start * row_bytes
        aligned = first - first % mmap.PAGESIZE
        mapped.madvise(mmap.MADV_WILLNEED, aligned, offset + stop * row_bytes - aligned)

    def chunk_order(self, rng: np.random.Generator, shuffle: bool) -> np.ndarray:
        """The order of the chunks in one epoch: a permutation when shuffling."""
        return rng.permutation(self.n_chunks) if shuffle else np.arange(self.n_chunks)

    def batches_per_epoch(self, batch_size: int) -> int:
        """Updates in one epoch: one for a full batch, else batches cut within each chunk."""
        if batch_size >= self.n:
            return 1
        return sum(-(-(stop - start) // batch_size)
                   for start, stop in map(self.bounds, range(self.n_chunks)))
