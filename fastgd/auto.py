"""``backend="auto"``: which backend (and, for jax, which device) a fit should run on.

The choice is made from the problem's shape (rows ``n``, features ``d``, outputs ``K``),
its batch size and epochs, which backends import, whether jax sees an accelerator, and the
``device``/``devices`` the caller gave. Nothing else enters: not the state of numba's
on-disk cache, not what this process already compiled. So the same call on the same
machine always picks the same backend, and therefore gives the same bits.

The rules, first match wins. Each rests on a figure measured by this project on an AMD
EPYC VM with 2 cores and no GPU (README "Results"; ``docs/targets.txt``,
``docs/compare/compare.md``, ``docs/bench-summary-stage2.txt``), except rule 2, for which
no GPU figure exists yet:

===  =====================================  ==========  =====================================
rule when (first match wins)               picks       the figure behind it
===  =====================================  ==========  =====================================
1    ``devices`` given, or ``device``       jax         only jax places data on jax devices
     neither None nor ``"cpu"``                         and meshes
2    jax sees an accelerator, ``device``    jax on the  NO GPU MEASUREMENT EXISTS: estimated.
     None, one step touches >= 2**17        accelerator A GPU step costs ~10-20 us of kernel
     elements (rows per step x d x K), the              launches whatever its size: numba's
     fit >= 2**28 (epochs x n x d x K),                 time for ~2**15 elements (0.26-0.54
     and epochs >= 4                                    ns each); 2**28 elements are ~0.13 s
                                                        of numba, so a device fit's fixed
                                                        costs are small; copying X over PCIe
                                                        (~16 GB/s) costs one or two numba
                                                        epochs (it reads at 15-30 GB/s), so
                                                        4 epochs save at least twice that
3    numpy's predicted time <= 50 ms (27    numpy       numba's first fit in a process costs
     us a step + 1 ns an element of each                0.5 s with a warm cache, 4-6 s with
     epoch)                                             an empty one
4    numba imports                          numba       fastest on a CPU in every measured
                                                        cell: per-sample SGD 4.3x scikit-
                                                        learn (jax 2.1x); full batch 0.88x
                                                        ``X @ w`` an epoch (jax 1.95x, numpy
                                                        3.25x); Adam batch 64 2.31x the optax
                                                        loop (jax 1.39x); one-vs-rest K = 10
                                                        SGD 146 ms (jax 3.03 s)
5    jax imports                            jax         next on a CPU: full batch 1.95x ``X @
                                                        w`` (numpy 3.25x), Adam 161 ms (numpy
                                                        728 ms), K = 10 SGD 3.03 s (numpy:
                                                        minutes)
6    otherwise                              numpy       always there
===  =====================================  ==========  =====================================

Where the figures come from:

- numba, jax, numpy on a CPU (rules 4, 5): ``docs/targets.txt`` sections 1-3 (per-sample
  SGD 200k x 100: numba 43.9 ms vs scikit-learn 188 ms; Adam batch 64 in order: optax loop
  / numba 2.31, / jax 1.39; full batch 2M x 32 per epoch / ``X @ w``: numba 0.88, jax 1.95,
  numpy 3.25); README "Known limits" (jax per-sample SGD ~2.1x scikit-learn; ~20x numba
  over K = 10 outputs); ``docs/bench-summary-stage2.txt`` (one-vs-rest hinge K = 10:
  numba 146 ms, jax 3.03 s; Adam batch 64: numba 149 ms, jax 161 ms, numpy 728 ms).
  numba leads in float32 as well (``docs/compare/compare.md``), so the dtype does not
  enter the CPU rules, and neither does the optimizer (numba leads for SGD and Adam).
- numpy's cost (rule 3): 27 us per step (``compare.md``: per-sample SGD 4096 x 64 on
  numpy, 111 ms an epoch of 4096 steps) plus 0.9-1 ns per element of X x K read per epoch
  (``compare.md``: full batch 262144 x 64 float64, 15 ms an epoch for 16.8 M elements;
  ``docs/targets.txt``: 2M x 32, 60.6 ms an epoch for 64 M).
- numba's first call (rule 3): 0.50 s for a fresh interpreter, import and a small fit
  with a warm cache (``docs/targets.txt`` section 5; of it, importing the numba backend
  ~0.19 s and loading the cached kernel ~0.33 s); with an empty cache 4-6 s for one
  output, 7-18 s for K outputs (README "Compile time").
- numba's speed on large problems (rule 2's yardstick): 0.26-0.54 ns per element of an
  epoch (``docs/targets.txt``: 6.4e8 elements of full batch in 165 ms, 1e8 of per-sample
  SGD in 43.9 ms, 1e8 of in-order Adam in 53.9 ms), i.e. X read at 15-30 GB/s; the
  memory bandwidth measured by ``fastgd compare`` is 30 GB/s.

Compile time. ``auto`` does not charge a fit for numba's compilation: a compiled entry
point is kept on disk (``cache=True``) and paid once per machine and (loss, family,
dtype, loop), after which a process loads it in ~0.5 s. Charging the 4-6 s compile to
every medium-sized fit would steer them to numpy for good, on machines where the kernel
has long been compiled, and asking numba's cache whether an entry is there would make the
choice (and the last bits of the result) depend on the cache's state. Only where numpy
is so quick (<= 50 ms) that even the warm 0.5 s cannot pay back does ``auto`` pick numpy.

Rule 2's thresholds are estimates (a GPU step's launch cost, PCIe at ~16 GB/s); they are
module constants, to be replaced by measurements from ``bench/accelerator_check.sh``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import sys
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from .backends import BACKEND_MODULES

__all__ = ["AUTO", "Choice", "detect_accelerator", "check_backend_name", "choose_backend",
           "importable_backends", "resolve_backend"]

#: The name that asks for the choice.
AUTO = "auto"

#: Rule 2: elements one step of an accelerator's loop must touch (rows per step x d x K).
GPU_MIN_STEP_ELEMENTS = 2**17
#: Rule 2: elements the whole fit must touch (epochs x n x d x K).
GPU_MIN_FIT_ELEMENTS = 2**28
#: Rule 2: epochs, to pay for copying X to the device (one or two numba epochs).
GPU_MIN_EPOCHS = 4
#: Rule 3: numpy's cost of one step (one Python-level batch), seconds.
NUMPY_STEP_S = 27e-6
#: Rule 3: numpy's cost of one element of X x K read in an epoch, seconds.
NUMPY_ELEMENT_S = 1e-9
#: Rule 3: numpy runs the fits it does in at most this long.
NUMPY_MAX_S = 0.05


@dataclass(frozen=True)
class Choice:
    """What ``backend="auto"`` runs.

    Attributes
    ----------
    backend : str
        A concrete backend name (never ``"auto"``).
    device : object
        The ``device`` to pass on: the caller's, or None (the backend's default device;
        for jax on an accelerator, jax's default device, which is that accelerator).
    rule : int
        The rule of the table in this module's docstring that decided.
    reason : str
        That rule, in a few words.
    """

    backend: str
    device: object
    rule: int
    reason: str

    def describe(self) -> str:
        """E.g. ``"numba (rule 4: numba, fastest on a CPU)"``."""
        where = f" on {self.device}" if self.device is not None else ""
        return f"{self.backend}{where} (rule {self.rule}: {self.reason})"


def check_backend_name(backend: object) -> str:
    """``backend`` if it is ``"auto"`` or a known backend name, else ``ValueError``."""
    if isinstance(backend, str) and (backend == AUTO or backend in BACKEND_MODULES):
        return backend
    known = [AUTO, *sorted(BACKEND_MODULES)]
    raise ValueError(f"backend must be one of {known}, got {backend!r}")


@functools.cache
def importable_backends() -> tuple[str, ...]:
    """The backends whose library is installed, found without importing it (asked once
    per process)."""
    libraries = {"numpy": "numpy", "numba": "numba", "jax": "jax"}
    return tuple(
        name for name in BACKEND_MODULES
        if importlib.util.find_spec(libraries.get(name, name)) is not None
    )


@functools.cache
def detect_accelerator() -> str | None:
    """The platform of jax's default devices when it is not the CPU (``"gpu"``,
    ``"tpu"``), else None; None without jax. Asked once per process.

    jax reaches an accelerator only through a PJRT plugin (the ``jax_plugins`` namespace
    package or entry points: CUDA, ROCm, Metal) or libtpu; without any of them its
    devices are CPUs, which this finds out without importing jax (about 1 s here).
    Otherwise it imports jax and asks ``jax.devices()``.
    """
    if importlib.util.find_spec("jax") is None:
        return None
    if "jax" not in sys.modules and not _accelerator_plugin_installed():
        return None
    try:
        import jax

        platform = jax.devices()[0].platform
    except Exception:  # a broken plugin is no accelerator
        return None
    return None if platform == "cpu" else platform


def _accelerator_plugin_installed() -> bool:
    """Whether a jax plugin or libtpu is installed (jax's own discovery, without jax)."""
    if importlib.util.find_spec("jax_plugins") or importlib.util.find_spec("libtpu"):
        return True
    return bool(importlib.metadata.entry_points(group="jax_plugins"))


def _numpy_seconds(n: int, elements: int, rows_per_step: int, epochs: int) -> float:
    """numpy's predicted time for the fit (rule 3)."""
    steps = epochs * math.ceil(n / rows_per_step)
    return steps * NUMPY_STEP_S + epochs * elements * NUMPY_ELEMENT_S


_DETECT = object()


def choose_backend(
    n: int,
    d: int,
    n_outputs: int = 1,
    batch_size: int | None = None,
    epochs: int = 100,
    dtype: object = np.float64,
    *,
    device: object = None,
    devices: object = None,
    accelerator: object = _DETECT,
    available: Collection[str] | None = None,
) -> Choice:
    """The backend (and device) ``backend="auto"`` runs a fit on: the module's rules.

    Parameters
    ----------
    n, d, n_outputs : int
        Rows, features and outputs (K: target columns, one-vs-rest classes, softmax
        classes).
    batch_size : int or None
        As :func:`fastgd.fit` takes it (None: full batch).
    epochs : int
        Epochs the fit runs at most.
    dtype : numpy dtype
        The data's (no rule depends on it today; see the module docstring).
    device, devices
        As :func:`fastgd.fit` takes them; any but None or ``"cpu"`` means jax.
    accelerator : str or None, optional
        The accelerator's platform, or None for none; by default :func:`detect_accelerator`
        finds out, only when the problem is large enough for rule 2 (so jax is not
        imported for the others).
    available : collection of str, optional
        The backends that import; by default :func:`importable_backends`.

    Returns
    -------
    Choice
    """
    del dtype  # kept in the signature: the rules may come to depend on it on a GPU
    if devices is not None or device not in (None, "cpu"):
        return Choice("jax", device, 1, "a jax device or mesh was asked for")
    available = importable_backends() if available is None else tuple(available)
    rows_per_step = n if batch_size is None else min(batch_size, n)
    elements = n * d * n_outputs
    large = (rows_per_step * d * n_outputs >= GPU_MIN_STEP_ELEMENTS
             and epochs * elements >= GPU_MIN_FIT_ELEMENTS and epochs >= GPU_MIN_EPOCHS)
    if large and device is None and "jax" in available:
        platform = detect_accelerator() if accelerator is _DETECT else accelerator
        if platform:
            return Choice("jax", None, 2, f"large enough for the {platform}")
    if _numpy_seconds(n, elements, rows_per_step, epochs) <= NUMPY_MAX_S:
        return Choice("numpy", device, 3, "small: numpy is done before numba loads")
    if "numba" in available:
        return Choice("numba", device, 4, "fastest on a CPU")
    if "jax" in available:
        return Choice("jax", device, 5, "numba not installed; jax next fastest on a CPU")
    return Choice("numpy", device, 6, "neither numba nor jax installed")


def resolve_backend(
    backend: str,
    n: int,
    d: int,
    n_outputs: int,
    batch_size: int | None,
    epochs: int,
    dtype: object,
    device: object,
    devices: object,
) -> tuple[str, object]:
    """``(backend, device)`` as given, or as :func:`choose_backend` decides for ``"auto"``."""
    if backend != AUTO:
        return backend, device
    choice = choose_backend(n, d, n_outputs, batch_size, epochs, dtype, device=device,
                            devices=devices)  # fmt: skip
    return choice.backend, choice.device
