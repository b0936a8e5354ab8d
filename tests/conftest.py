"""Shared fixtures: every backend that imports, and both float dtypes.

A new backend module registered in ``fastgd.backends`` is picked up by the ``backend``
fixture as soon as it imports, and so inherits every test that takes the fixture; each
backend runs (and fails) as its own test id.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS


@pytest.fixture(params=BACKENDS, ids=BACKENDS, scope="session")
def backend(request) -> str:
    """Name of one available backend (``"numpy"``, ``"numba"``, ``"jax"``)."""
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"], scope="session")
def dtype(request) -> type:
    """One of the two float dtypes the library computes in."""
    return request.param
