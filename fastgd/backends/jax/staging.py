"""Host-side copies and padding, in numpy, before the arrays go to a device.

Aligned copies that jax on a CPU uses in place (:func:`_cpu_aligned`), rows padded to a
process's block (:func:`_padded_rows`), epoch orders padded to a power of two
(:func:`_padded_epochs`).
"""

from __future__ import annotations

import numpy as np

from ..._rows import map_row_ranges, staging_buffer


def _padded_rows(a: np.ndarray, block: int) -> np.ndarray:
    """``a`` followed by zero rows up to ``block`` rows."""
    out = np.zeros((block, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


#: Alignment (bytes) at which jax on a CPU uses a numpy buffer as it is instead of copying.
_CPU_ALIGNMENT = 64


def _cpu_aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself if jax can use its buffer on a CPU, else an aligned copy of it.

    ``jax.device_put`` of a numpy array that is not 64-byte aligned (large numpy arrays
    usually start 16 bytes past a page) makes jax copy it into a buffer of its own;
    copying it here with numpy into an aligned buffer, which jax then uses as it is, is
    several times faster (measured on a 160 MB float64 ``X`` and 2 cores: 19 ms, split by
    rows across threads, against 85 ms or more). The copy is private to the fit, so later
    changes to ``a`` cannot reach it.
    """
    if not isinstance(a, np.ndarray) or a.ctypes.data % _CPU_ALIGNMENT == 0:
        return a
    out = staging_buffer(a.shape, a.dtype)
    map_row_ranges(lambda start, stop: np.copyto(out[start:stop], a[start:stop]), a)
    return out


def _padded_epochs(orders: np.ndarray, full_batch: bool) -> np.ndarray:
    """``orders`` as int32 with its epoch count rounded up to a power of two.

    The padding rows are never run: their contents are whatever the staging buffer held
    (see :func:`staging_buffer`), and nothing writes or reads them. The buffer is aligned,
    so on a CPU jax uses it in place. With a full batch the order is not used, so only a
    (E', 0) placeholder travels to the device.
    """
    n_epochs, n = orders.shape
    padded = 1 << (n_epochs - 1).bit_length()
    if full_batch:
        return np.zeros((padded, 0), dtype=np.int32)
    dtype = np.int32 if n < 2**31 else np.int64
    out = staging_buffer((padded, n), dtype)
    out[:n_epochs] = orders
    return out
