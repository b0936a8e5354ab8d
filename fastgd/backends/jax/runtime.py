"""How the jax backend runs jax: 64-bit types per call, a persistent compilation cache.

Float64 inputs need jax's 64-bit types, switched on for the duration of each call of the
backend only (:func:`_x64`), never globally. On import, jax's persistent compilation
cache is pointed at ``$FASTGD_JAX_CACHE_DIR`` unless the user configured one
(:func:`_configure_compilation_cache`), once per process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import jax


def _configure_compilation_cache() -> None:
    """Turn on jax's persistent compilation cache unless the user configured one."""
    if jax.config.jax_compilation_cache_dir:
        return
    default = os.path.join(os.path.expanduser("~"), ".cache", "fastgd", "jax")
    jax.config.update("jax_compilation_cache_dir", os.environ.get("FASTGD_JAX_CACHE_DIR", default))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # jax decides once, at its first compilation, whether the cache is in use; start over
    # in case something was compiled before this module was imported.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


_configure_compilation_cache()


@contextmanager
def _x64() -> Iterator[None]:
    """64-bit types for the duration of one call of this module, restored afterwards."""
    with jax.enable_x64(True):
        yield
