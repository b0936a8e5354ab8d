"""Fixtures of the benchmark suite: the ``backend`` parameter over every available backend."""

from __future__ import annotations

import pytest

import fastgd


@pytest.fixture(params=fastgd.available_backends())
def backend(request) -> str:
    """Name of each backend that imports on this machine."""
    return request.param
