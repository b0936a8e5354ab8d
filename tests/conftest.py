"""Shared fixtures: every backend that imports, and both float dtypes.

A new backend module registered in ``fastgd.backends`` is picked up by the ``backend``
fixture as soon as it imports, and so inherits every test that takes the fixture; each
backend runs (and fails) as its own test id.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastgd

#: ``FASTGD_TEST_BACKENDS=numpy,jax pytest`` narrows the run to some backends.
_only = os.environ.get("FASTGD_TEST_BACKENDS")
BACKENDS = [
    name for name in fastgd.available_backends() if not _only or name in _only.split(",")
]


@pytest.fixture(params=BACKENDS, ids=BACKENDS, scope="session")
def backend(request) -> str:
    """Name of one available backend (``"numpy"``, ``"numba"``, ``"jax"``)."""
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"], scope="session")
def dtype(request) -> type:
    """One of the two float dtypes the library computes in."""
    return request.param
