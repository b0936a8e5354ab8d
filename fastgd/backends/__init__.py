"""Backend registry: the same five functions written three ways, imported lazily.

Each backend package defines the data bundle ``Data`` and the functions ``prepare``,
``loss_grad``, ``init_state``, ``update`` and ``run_epochs`` with identical signatures (see
``fastgd.backends.numpy`` for their contract).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["BACKEND_MODULES", "CONTRACT", "available_backends", "get_backend"]

#: The public names every backend module defines, with the same signatures.
CONTRACT = ("Data", "prepare", "loss_grad", "init_state", "update", "run_epochs")

#: Backend name -> module path. ``available_backends`` lists those whose module imports.
BACKEND_MODULES = {
    "numpy": "fastgd.backends.numpy",
    "numba": "fastgd.backends.numba",
    "jax": "fastgd.backends.jax",
}

_loaded: dict[str, ModuleType] = {}


def available_backends() -> list[str]:
    """Names of the backends that import on this machine, in a fixed order."""
    names = []
    for name in BACKEND_MODULES:
        try:
            get_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name``.

    Parameters
    ----------
    name : str
        One of ``BACKEND_MODULES``.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend; the message lists the known ones.
    ImportError
        If the backend's library (numba, jax) is not installed.
    """
    if not isinstance(name, str) or name not in BACKEND_MODULES:
        raise ValueError(f"backend must be one of {sorted(BACKEND_MODULES)}, got {name!r}")
    if name not in _loaded:
        _loaded[name] = importlib.import_module(BACKEND_MODULES[name])
    return _loaded[name]
