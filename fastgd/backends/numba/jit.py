"""Compile flags shared by every kernel of the numba backend."""

from __future__ import annotations

#: fastmath flags that keep ``isnan``/``isinf`` and NaN propagation intact.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
_JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}
