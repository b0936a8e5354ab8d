"""What machine this is: CPU, threads, library versions, devices, and its memory bandwidth.

Used by ``fastgd info`` and ``fastgd compare`` so that every figure they print or save
comes with the description of the machine that produced it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time

import numpy as np

from ._rows import usable_cpus

__all__ = [
    "cpu_model",
    "describe_machine",
    "jax_mesh",
    "jax_platforms",
    "library_versions",
    "measure_bandwidth",
    "mesh_label",
    "mesh_size",
    "numba_cache_dir",
    "thread_counts",
]

#: Distributions whose versions matter to the figures, looked up without importing them.
_LIBRARIES = ("fastgd", "numpy", "numba", "jax", "jaxlib", "optax", "scikit-learn", "torch")


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    """Total physical memory in bytes, when the OS tells it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def library_versions() -> dict[str, str | None]:
    """Installed version of each library that matters to the figures (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def thread_counts() -> dict[str, object]:
    """Threads each library may use: CPUs usable by this process, numba's, BLAS's."""
    counts: dict[str, object] = {"cpus_usable": usable_cpus()}
    try:
        import numba

        counts["numba"] = numba.get_num_threads()
        counts["numba_threading_layer"] = numba.config.THREADING_LAYER
    except ImportError:
        counts["numba"] = None
    try:
        from threadpoolctl import threadpool_info

        counts["blas"] = [
            {
                "library": p.get("internal_api"),
                "file": os.path.basename(p.get("filepath") or ""),
                "threads": p.get("num_threads"),
            }
            for p in threadpool_info()
        ]
    except ImportError:
        counts["blas"] = None
    return counts


def numba_cache_dir() -> str:
    """Where numba caches compiled functions (``NUMBA_CACHE_DIR``, or beside the sources)."""
    try:
        import numba
    except ImportError:
        return "numba not installed"
    configured = numba.config.CACHE_DIR
    if configured:
        return str(configured)
    return "default: __pycache__ beside fastgd/backends (set NUMBA_CACHE_DIR to move it)"


def jax_platforms() -> dict[str, list[str]]:
    """jax's devices by platform, e.g. ``{"cpu": ["TFRT_CPU_0"], "gpu": ["NVIDIA A100"]}``.

    Empty when jax is not installed. Platforms that fail to initialise are left out.
    """
    try:
        import jax
    except ImportError:
        return {}
    found: dict[str, list[str]] = {}
    for name in ("cpu", "gpu", "tpu"):
        try:
            devices = jax.devices(name)
        except RuntimeError:
            continue
        if devices:
            found[name] = [
                str(d) if d.device_kind == name else f"{d} ({d.device_kind})" for d in devices
            ]
    return found


def jax_mesh() -> dict[str, object] | None:
    """The mesh ``fit(backend="jax", devices="all")`` would train on; None without jax.

    ``devices="all"`` is every device of ``jax.devices()``: jax's default platform, the
    devices of every process (see ``fastgd.backends.jax``).

    Returns
    -------
    dict or None
        ``label`` (e.g. ``"cpu x4"``, the ``device`` column of ``fastgd compare``),
        ``platform``, ``devices`` (their names, in mesh order) and ``processes``.
    """
    try:
        import jax
    except ImportError:
        return None
    devices = jax.devices()
    return {
        "label": mesh_label(devices[0].platform, len(devices)),
        "platform": devices[0].platform,
        "devices": [str(d) for d in devices],
        "processes": jax.process_count(),
    }


#: Between the platform and the device count in a mesh's label: ``"cpu x4"``.
MESH_LABEL_SEPARATOR = " x"


def mesh_label(platform: str, count: int) -> str:
    """The label of a mesh of ``count`` devices of ``platform``, e.g. ``"cpu x4"``."""
    return f"{platform}{MESH_LABEL_SEPARATOR}{count}"


def mesh_size(label: str) -> int | None:
    """The device count of a mesh label made by :func:`mesh_label`; None for a platform."""
    _, sep, count = label.rpartition(MESH_LABEL_SEPARATOR)
    return int(count) if sep and count.isdigit() else None


def measure_bandwidth(nbytes: int = 256 * 2**20, repeat: int = 5) -> dict[str, float]:
    """Memory read bandwidth, measured by streaming one large float64 array.

    Two readers of the same array are timed, each ``repeat`` times: ``numpy.sum`` (one
    thread, SIMD) and a BLAS matrix-vector product (all BLAS threads). Each figure is the
    median; the larger of the two is what a kernel that reads X once per epoch can hope for.

    Parameters
    ----------
    nbytes : int
        Size of the array; keep it well above the last-level cache.
    repeat : int
        Timed passes per reader (after one untimed pass).

    Returns
    -------
    dict
        ``sum_gbs`` and ``gemv_gbs`` (GB/s, 1 GB = 1e9 bytes), ``bandwidth_gbs`` (their
        maximum), ``nbytes`` and ``repeat``.
    """
    cols = 64
    rows = max(1, nbytes // (8 * cols))
    a = np.random.default_rng(0).standard_normal((rows, cols))
    v = np.ones(cols)
    size = a.nbytes

    def median_gbs(read) -> float:
        read()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            read()
            times.append(time.perf_counter() - start)
        return size / float(np.median(times)) / 1e9

    sum_gbs = median_gbs(a.sum)
    gemv_gbs = median_gbs(lambda: a @ v)
    return {
        "sum_gbs": sum_gbs,
        "gemv_gbs": gemv_gbs,
        "bandwidth_gbs": max(sum_gbs, gemv_gbs),
        "nbytes": size,
        "repeat": repeat,
    }


def describe_machine() -> dict[str, object]:
    """CPU, cores, memory, threads, OS, Python, library versions and jax devices, as a dict."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "threads": thread_counts(),
        "versions": library_versions(),
        "jax_devices": jax_platforms(),
        "jax_mesh": jax_mesh(),
    }
