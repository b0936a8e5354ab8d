"""Chunked epochs: training on data larger than the memory budget.

When the rows of X (with their targets and weights) take more bytes than the memory
budget, :func:`fastgd.fit` walks each epoch in chunks of consecutive rows of at most the
budget: the chunks in a shuffled order (drawn in numpy, one permutation of the chunks per
epoch), the rows of each chunk shuffled within it, each chunk read sequentially from X
(typically a ``np.memmap`` on disk) into one reused buffer and handed to the backend. So
every backend walks the same batches, and the reads are sequential, not random.

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


#: Alignment of the chunk buffer: jax on a CPU then uses it in place instead of copying it.
_ALIGNMENT = 64


def _aligned_empty(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array starting at a ``_ALIGNMENT``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = shape[0] * shape[1] * dtype.itemsize
    raw = np.empty(nbytes + _ALIGNMENT, dtype=np.uint8)
    offset = -raw.ctypes.data % _ALIGNMENT
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def default_memory_budget(device_free_bytes: int | None = None) -> int:
    """Half of the free memory of the device (when given) or of the host, in bytes."""
    free = device_free_bytes if device_free_bytes is not None else _available_host_bytes()
    return max(1, int(_FREE_SHARE * free))


def rows_per_chunk(budget: int, bytes_per_row: int) -> int:
    """Rows of at most ``budget`` bytes (at least one)."""
    return max(1, budget // bytes_per_row)


class ChunkedRows:
    """The rows of (X, Y, weight) as chunks of consecutive rows, read into one buffer.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        C-contiguous (a ``np.memmap`` is read in place, chunk by chunk).
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
        self._buffer = _aligned_empty((rows, X.shape[1]), X.dtype)

    def bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.rows
        return start, min(start + self.rows, self.n)

    def load(self, chunk: int):
        """Chunk ``chunk`` as ``(X_rows, Y_rows, weight_rows)``; X is read into the buffer."""
        start, stop = self.bounds(chunk)
        X = self._buffer[: stop - start]
        np.copyto(X, self.X[start:stop])
        weight = None if self.weight is None else self.weight[start:stop]
        return X, self.Y[start:stop], weight

    def chunk_order(self, rng: np.random.Generator, shuffle: bool) -> np.ndarray:
        """The order of the chunks in one epoch: a permutation when shuffling."""
        return rng.permutation(self.n_chunks) if shuffle else np.arange(self.n_chunks)

    def batches_per_epoch(self, batch_size: int) -> int:
        """Updates in one epoch: one for a full batch, else batches cut within each chunk."""
        if batch_size >= self.n:
            return 1
        return sum(-(-(stop - start) // batch_size)
                   for start, stop in map(self.bounds, range(self.n_chunks)))
