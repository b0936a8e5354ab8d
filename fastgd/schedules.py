"""Learning-rate schedules: their specs, codes and formulas.

Every spec is a frozen dataclass that validates itself on construction (a bad
hyper-parameter is a ``ValueError`` naming it) and lowers to a ``SCHED_*`` code and three
floats (``params()``). :func:`learning_rate` is the plain-Python formula of each code, the
one the backends' kernels repeat. :mod:`fastgd.specs` re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "SCHED_CONSTANT",
    "SCHED_INVSCALING",
    "SCHED_EXPONENTIAL",
    "SCHED_COSINE",
    "SCHED_OPTIMAL",
    "SCHED_PA1",
    "SCHED_PA2",
    "PA_SCHEDULES",
    "Constant",
    "InvScaling",
    "Exponential",
    "Cosine",
    "Optimal",
    "Adaptive",
    "PassiveAggressive",
    "Schedule",
    "invscaling",
    "exponential",
    "cosine",
    "optimal",
    "adaptive",
    "resolve_schedule",
    "learning_rate",
]

# Int codes used by every backend: part of the kernel contract.
SCHED_CONSTANT, SCHED_INVSCALING, SCHED_EXPONENTIAL, SCHED_COSINE = 0, 1, 2, 3
SCHED_OPTIMAL = 4
SCHED_PA1, SCHED_PA2 = 5, 6
#: The passive-aggressive schedules: a step size per sample from its loss (see
#: :class:`PassiveAggressive`), only in per-sample SGD.
PA_SCHEDULES = frozenset({SCHED_PA1, SCHED_PA2})


def _check_number(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.generic) and np.issubdtype(type(value), np.number):
                value = value.item()
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
            ) from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_positive(name: str, value: object) -> float:
    value = _check_number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _check_nonnegative(name: str, value: object) -> float:
    value = _check_number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _check_unit_interval(name: str, value: object, *, closed_right: bool = True) -> float:
    value = _check_number(name, value)
    upper_ok = value <= 1 if closed_right else value < 1
    if value < 0 or not upper_ok:
        bracket = "]" if closed_right else ")"
        raise ValueError(f"{name} must be in [0, 1{bracket}, got {value!r}")
    return value


# ------------------------------------------------------------------------ schedules


@dataclass(frozen=True)
class Constant:
    """Constant learning rate."""

    lr0: float
    code = SCHED_CONSTANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr0", _check_positive("lr", self.lr0))

    def params(self) -> tuple[float, float, float]:
        return (self.lr0, 0.0, 0.0)


@dataclass(frozen=True)
class InvScaling:
    """``lr0 / t**power_t`` at update t = 1, 2, … (scikit-learn's ``invscaling``)."""

    lr0: float
    power_t: float = 0.25
    code = SCHED_INVSCALING

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr0", _check_positive("lr0", self.lr0))
        object.__setattr__(self, "power_t", _check_nonnegative("power_t", self.power_t))

    def params(self) -> tuple[float, float, float]:
        return (self.lr0, self.power_t, 0.0)


@dataclass(frozen=True)
class Exponential:
    """``lr0 * decay_rate**((t − 1) / decay_steps)`` (optax's ``exponential_decay``)."""

    lr0: float
    decay_rate: float
    decay_steps: float
    code = SCHED_EXPONENTIAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr0", _check_positive("lr0", self.lr0))
        object.__setattr__(self, "decay_rate", _check_positive("decay_rate", self.decay_rate))
        object.__setattr__(self, "decay_steps", _check_positive("decay_steps", self.decay_steps))

    def params(self) -> tuple[float, float, float]:
        return (self.lr0, self.decay_rate, self.decay_steps)


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from lr0 to ``final_fraction * lr0`` over ``decay_steps`` updates.

    ``lr0 * ((1 − f) · ½(1 + cos(π · min(t − 1, decay_steps) / decay_steps)) + f)``,
    optax's ``cosine_decay_schedule`` with ``alpha = final_fraction``.
    """

    lr0: float
    decay_steps: float
    final_fraction: float = 0.0
    code = SCHED_COSINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr0", _check_positive("lr0", self.lr0))
        object.__setattr__(self, "decay_steps", _check_positive("decay_steps", self.decay_steps))
        object.__setattr__(
            self, "final_fraction", _check_unit_interval("final_fraction", self.final_fraction)
        )

    def params(self) -> tuple[float, float, float]:
        return (self.lr0, self.decay_steps, self.final_fraction)


@dataclass(frozen=True)
class Optimal:
    """scikit-learn's ``optimal`` rate ``1 / (alpha · (t0 + t − 1))`` at update t = 1, 2, …

    ``alpha`` is the regularization strength the rate is tuned to and ``t0`` the offset
    that sets the first step; :func:`optimal` computes scikit-learn's ``t0``.
    """

    alpha: float
    t0: float
    code = SCHED_OPTIMAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _check_positive("alpha", self.alpha))
        object.__setattr__(self, "t0", _check_positive("t0", self.t0))

    def params(self) -> tuple[float, float, float]:
        return (self.alpha, self.t0, 0.0)


def optimal(alpha: float) -> Optimal:
    """scikit-learn's ``learning_rate="optimal"`` for the regularization ``alpha``.

    scikit-learn starts at ``eta0 = typw / max(1, dloss(y=1, p=-typw))`` with
    ``typw = sqrt(1 / sqrt(alpha))`` and sets ``t0 = 1 / (eta0 · alpha)``. For every loss
    fastgd has (and alpha < 1, where typw > 1), that loss derivative is negative, so the
    max is 1 and ``eta0 = typw`` (tested against ``SGDClassifier``).
    """
    alpha = _check_positive("alpha", alpha)
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    return Optimal(alpha, 1.0 / (typw * alpha))


@dataclass(frozen=True)
class Adaptive:
    """scikit-learn's ``adaptive`` rate: constant ``lr0`` until ``n_iter_no_change`` epochs
    in a row miss ``tol``; then the rate is divided by 5 (while above 1e-6) and training
    goes on. The kernels see a constant rate; :func:`fastgd.fit` changes it between
    epochs (it needs ``tol``, without which it is a constant rate)."""

    lr0: float
    code = SCHED_CONSTANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr0", _check_positive("lr0", self.lr0))

    def params(self) -> tuple[float, float, float]:
        return (self.lr0, 0.0, 0.0)


def adaptive(lr0: float) -> Adaptive:
    """scikit-learn's ``learning_rate="adaptive"`` starting at ``lr0``."""
    return Adaptive(lr0)


@dataclass(frozen=True)
class PassiveAggressive:
    """scikit-learn's ``learning_rate="pa1"``/``"pa2"`` (Crammer et al. 2006), with
    aggressiveness ``C`` (scikit-learn's ``eta0``): per-sample SGD only, the loss
    ``hinge`` or ``epsilon_insensitive``, the SGD optimizer without momentum.

    Each sample's step moves the parameters by ``tau·s`` along ``−sign(dloss)·(x, 1)``
    (``s`` its weight, ``loss`` its unweighted loss, ``‖x‖²`` without the intercept):
    ``tau = min(C, loss / ‖x‖²)`` for ``kind="pa1"`` (0 for a row of zeros) and
    ``tau = loss / (‖x‖² + 1/(2C))`` for ``"pa2"``. A penalty (and the one-class SVM's
    ``nu·b``) steps at the learning rate ``C``: the weights shrink by ``1 − C·l2``. The
    objective reported per epoch (what ``tol`` watches) is scikit-learn's: the mean
    unweighted loss alone, without the penalty or the samples' weights (pa minimises no
    objective of its own; this is what scikit-learn watches).
    """

    C: float
    kind: str = "pa1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "C", _check_positive("C", self.C))
        if self.kind not in ("pa1", "pa2"):
            raise ValueError(f"kind must be 'pa1' or 'pa2', got {self.kind!r}")

    @property
    def code(self) -> int:
        return SCHED_PA1 if self.kind == "pa1" else SCHED_PA2

    def params(self) -> tuple[float, float, float]:
        return (self.C, 0.0, 0.0)


Schedule = Constant | InvScaling | Exponential | Cosine | Optimal | Adaptive | PassiveAggressive

def invscaling(lr0: float, power_t: float = 0.25) -> InvScaling:
    """Inverse-scaling schedule ``lr0 / t**power_t``, t counting updates from 1."""
    return InvScaling(lr0, power_t)


def exponential(lr0: float, decay_rate: float, decay_steps: float) -> Exponential:
    """Exponential decay ``lr0 * decay_rate**((t − 1) / decay_steps)``."""
    return Exponential(lr0, decay_rate, decay_steps)


def cosine(lr0: float, decay_steps: float, final_fraction: float = 0.0) -> Cosine:
    """Cosine decay over ``decay_steps`` updates down to ``final_fraction * lr0``."""
    return Cosine(lr0, decay_steps, final_fraction)


def resolve_schedule(lr: float | Schedule) -> Schedule:
    """Turn ``lr`` (a positive float or a schedule) into a schedule spec."""
    if isinstance(lr, Schedule):
        return lr
    return Constant(_check_positive("lr", lr))


def learning_rate(schedule_code: int, schedule_params: tuple[float, float, float], t: int) -> float:
    """Learning rate at update ``t`` (counted from 1), in plain Python (for reference/tests)."""
    lr0, p1, p2 = schedule_params
    if schedule_code == SCHED_CONSTANT:
        return lr0
    if schedule_code == SCHED_INVSCALING:
        return lr0 / t**p1
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * p1 ** ((t - 1) / p2)
    if schedule_code == SCHED_COSINE:
        k = min(t - 1, p1)
        return lr0 * ((1.0 - p2) * 0.5 * (1.0 + math.cos(math.pi * k / p1)) + p2)
    if schedule_code == SCHED_OPTIMAL:  # lr0 is alpha, p1 is t0
        return 1.0 / (lr0 * (p1 + t - 1))
    if schedule_code in PA_SCHEDULES:  # the penalty's rate; the loss's step is per sample
        return lr0
    raise ValueError(f"unknown schedule code {schedule_code!r}")
