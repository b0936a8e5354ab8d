"""Specifications of what to train: losses, penalties, optimizers and learning-rate schedules.

The learning-rate schedules live in :mod:`fastgd.schedules` and are re-exported here.

Every spec is a frozen dataclass that validates itself on construction, so a bad
hyper-parameter is a ``ValueError`` naming the argument before any work starts.

At the kernel boundary each spec is *lowered* to plain numbers (an int code plus a
tuple of floats, see :class:`LoweredModel` and :class:`LoweredOptimizer`): the numba
backend then compiles a bounded number of specializations, and the jax backend sees a
static, hashable configuration.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

from .schedules import (
    PA_SCHEDULES,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
    SCHED_OPTIMAL,
    SCHED_PA1,
    SCHED_PA2,
    Adaptive,
    Constant,
    Cosine,
    Exponential,
    InvScaling,
    Optimal,
    PassiveAggressive,
    Schedule,
    _check_nonnegative,
    _check_number,
    _check_positive,
    _check_unit_interval,
    adaptive,
    cosine,
    exponential,
    invscaling,
    learning_rate,
    optimal,
    resolve_schedule,
)

__all__ = [
    "Squared",
    "Huber",
    "Logistic",
    "Hinge",
    "SquaredHinge",
    "ModifiedHuber",
    "Perceptron",
    "EpsilonInsensitive",
    "SquaredEpsilonInsensitive",
    "Multinomial",
    "OneClassHinge",
    "Loss",
    "SGD",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "Optimizer",
    "Constant",
    "InvScaling",
    "Exponential",
    "Cosine",
    "PassiveAggressive",
    "Schedule",
    "invscaling",
    "exponential",
    "cosine",
    "resolve_loss",
    "resolve_optimizer",
    "resolve_penalty",
    "LoweredModel",
    "LoweredOptimizer",
    "lower_model",
    "check_max_dloss",
    "lower_optimizer",
    "learning_rate",
    "resolve_schedule",
    "LOSS_SQUARED",
    "LOSS_HUBER",
    "LOSS_LOGISTIC",
    "LOSS_HINGE",
    "LOSS_SQUARED_HINGE",
    "LOSS_MODIFIED_HUBER",
    "LOSS_EPSILON_INSENSITIVE",
    "LOSS_SQUARED_EPSILON_INSENSITIVE",
    "LOSS_MULTINOMIAL",
    "LOSS_PERCEPTRON",
    "LOSS_CODES",
    "SIGNED_LABEL_LOSSES",
    "OPT_SGD",
    "OPT_ADAGRAD",
    "OPT_RMSPROP",
    "OPT_ADAM",
    "OPT_ADAMW",
    "SCHED_CONSTANT",
    "SCHED_INVSCALING",
    "SCHED_EXPONENTIAL",
    "SCHED_COSINE",
    "SCHED_OPTIMAL",
    "SCHED_PA1",
    "SCHED_PA2",
    "PA_SCHEDULES",
    "PA_LOSSES",
    "check_passive_aggressive",
    "Optimal",
    "optimal",
    "Adaptive",
    "adaptive",
]

# Int codes used by every backend. They are part of the kernel contract.
LOSS_SQUARED, LOSS_HUBER, LOSS_LOGISTIC = 0, 1, 2
LOSS_HINGE, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER = 3, 4, 5
LOSS_EPSILON_INSENSITIVE, LOSS_SQUARED_EPSILON_INSENSITIVE = 6, 7
LOSS_MULTINOMIAL, LOSS_PERCEPTRON = 8, 9
#: Every loss code, in code order.
LOSS_CODES = tuple(range(10))
OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW = 0, 1, 2, 3, 4
# --------------------------------------------------------------------------- losses


class _WithoutParameter:
    """A loss with no parameter of its own: its lowered ``loss_param`` is 0."""

    def param(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Squared(_WithoutParameter):
    """Squared error, ½ (p − y)² per sample; d loss / d p = p − y."""

    code = LOSS_SQUARED
    kind = "regression"


@dataclass(frozen=True)
class Huber:
    """Huber loss: ½ r² if |r| ≤ ε else ε(|r| − ½ε), with r = p − y; d/dp = clip(r, −ε, ε)."""

    epsilon: float = 1.35
    code = LOSS_HUBER
    kind = "regression"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _check_positive("epsilon", self.epsilon))

    def param(self) -> float:
        return self.epsilon


@dataclass(frozen=True)
class EpsilonInsensitive:
    """scikit-learn's ``epsilon_insensitive``: max(0, |p − y| − ε); d/dp = sign(r) beyond ε."""

    epsilon: float = 0.1
    code = LOSS_EPSILON_INSENSITIVE
    kind = "regression"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _check_nonnegative("epsilon", self.epsilon))

    def param(self) -> float:
        return self.epsilon


@dataclass(frozen=True)
class SquaredEpsilonInsensitive:
    """scikit-learn's ``squared_epsilon_insensitive``: max(0, |p − y| − ε)²."""

    epsilon: float = 0.1
    code = LOSS_SQUARED_EPSILON_INSENSITIVE
    kind = "regression"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _check_nonnegative("epsilon", self.epsilon))

    def param(self) -> float:
        return self.epsilon


@dataclass(frozen=True)
class Logistic(_WithoutParameter):
    """Logistic loss for labels y ∈ {0, 1}: log(1 + eᵖ) − y·p; d/dp = sigmoid(p) − y."""

    code = LOSS_LOGISTIC
    kind = "binary"


@dataclass(frozen=True)
class Hinge(_WithoutParameter):
    """Linear SVM loss, scikit-learn's ``hinge``: max(0, 1 − s·p), s = ±1 the label."""

    code = LOSS_HINGE
    kind = "binary"


@dataclass(frozen=True)
class Perceptron(_WithoutParameter):
    """scikit-learn's ``perceptron``: max(0, −s·p), s = ±1 the label (a hinge at 0)."""

    code = LOSS_PERCEPTRON
    kind = "binary"


@dataclass(frozen=True)
class SquaredHinge(_WithoutParameter):
    """scikit-learn's ``squared_hinge``: max(0, 1 − s·p)², s = ±1 the label."""

    code = LOSS_SQUARED_HINGE
    kind = "binary"


@dataclass(frozen=True)
class ModifiedHuber(_WithoutParameter):
    """scikit-learn's ``modified_huber``, z = s·p: max(0, 1 − z)² for z ≥ −1, else −4z."""

    code = LOSS_MODIFIED_HUBER
    kind = "binary"


@dataclass(frozen=True)
class Multinomial(_WithoutParameter):
    """Softmax cross-entropy over K classes: logsumexp(p) − p_y for integer labels y."""

    code = LOSS_MULTINOMIAL
    kind = "multinomial"


@dataclass(frozen=True)
class OneClassHinge:
    """The linear one-class SVM's objective (scikit-learn's ``SGDOneClassSVM``): the hinge
    ``max(0, 1 − p)`` of every sample (its labels are all +1: pass ``y = 1``), plus
    ``nu·b`` on the intercept ``b``.

    With the l2 penalty ``alpha = nu`` the objective is
    ``nu/2·‖w‖² + mean max(0, ρ − w·x) − nu·ρ + nu`` in the offset ``ρ = 1 − b``: the
    one-class SVM's primal (Schölkopf et al. 2001) times ``nu``. The term ``nu·b`` is not
    weighted by the samples' weights (it is part of the regularisation); its gradient is
    the constant ``nu`` on the intercept (0 when the intercept is not fitted), and the
    lowered model carries it as ``intercept_slope``.
    """

    nu: float = 0.5
    code = LOSS_HINGE
    kind = "binary"

    def __post_init__(self) -> None:
        nu = _check_number("nu", self.nu)
        if not 0.0 < nu <= 1.0:
            raise ValueError(f"nu must be in (0, 1], got {self.nu!r}")
        object.__setattr__(self, "nu", nu)

    def param(self) -> float:
        return 0.0


Loss = (
    Squared | Huber | EpsilonInsensitive | SquaredEpsilonInsensitive | Logistic | Hinge
    | Perceptron | SquaredHinge | ModifiedHuber | Multinomial | OneClassHinge
)
_LOSS_NAMES = {
    "squared": Squared,
    "huber": Huber,
    "epsilon_insensitive": EpsilonInsensitive,
    "squared_epsilon_insensitive": SquaredEpsilonInsensitive,
    "logistic": Logistic,
    "hinge": Hinge,
    "perceptron": Perceptron,
    "squared_hinge": SquaredHinge,
    "modified_huber": ModifiedHuber,
    "multinomial": Multinomial,
}
#: scikit-learn's names for the same losses.
_LOSS_ALIASES = {"squared_error": "squared", "log_loss": "logistic"}

#: Losses whose kernels take labels as ±1 (scikit-learn's formulas); ``logistic`` keeps
#: its {0, 1} form, ``multinomial`` takes class codes 0..K-1.
SIGNED_LABEL_LOSSES = frozenset(
    {LOSS_HINGE, LOSS_PERCEPTRON, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER}
)


def resolve_loss(loss: str | Loss) -> Loss:
    """Turn a loss name or spec into a spec; unknown names raise ``ValueError``."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        name = _LOSS_ALIASES.get(loss, loss)
        if name in _LOSS_NAMES:
            return _LOSS_NAMES[name]()
    names = sorted([*_LOSS_NAMES, *_LOSS_ALIASES])
    raise ValueError(f"loss must be one of {names} or a loss spec, got {loss!r}")


#: The losses a passive-aggressive schedule takes: their derivative is 0 or ±1, so the
#: step's direction is the sign of the derivative (scikit-learn's two).
PA_LOSSES = frozenset({LOSS_HINGE, LOSS_EPSILON_INSENSITIVE})


def check_passive_aggressive(optimizer: object, loss: Loss, batch_size: int | None) -> None:
    """A ``ValueError`` naming the argument when ``optimizer``'s schedule is a
    :class:`PassiveAggressive` one and the rest does not fit it: the SGD optimizer
    without momentum, ``batch_size=1`` (per-sample steps), the loss ``hinge`` or
    ``epsilon_insensitive`` (or the one-class hinge)."""
    schedule = getattr(optimizer, "lr", None)
    if not isinstance(schedule, PassiveAggressive):
        return
    if not isinstance(optimizer, SGD) or optimizer.momentum != 0.0:
        raise ValueError(
            f"a PassiveAggressive learning rate needs the SGD optimizer without momentum, "
            f"got optimizer={optimizer!r}"
        )
    if batch_size != 1:
        raise ValueError(
            f"a PassiveAggressive learning rate is a per-sample step size: it needs "
            f"batch_size=1, got batch_size={batch_size!r}"
        )
    if loss.code not in PA_LOSSES:
        raise ValueError(
            f"a PassiveAggressive learning rate needs the loss 'hinge' or "
            f"'epsilon_insensitive', got loss={type(loss).__name__}"
        )


# ----------------------------------------------------------------------- optimizers


@dataclass(frozen=True)
class SGD:
    """SGD with optional (Nesterov) momentum, optax's ``sgd``.

    trace = g + μ·trace; u = trace (Nesterov: g + μ·trace); θ −= lr·u.
    """

    lr: float | Schedule = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    code = OPT_SGD

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", resolve_schedule(self.lr))
        object.__setattr__(
            self, "momentum", _check_unit_interval("momentum", self.momentum, closed_right=False)
        )
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {self.nesterov!r}")

    def params(self) -> tuple[float, float, float, float]:
        return (self.momentum, float(self.nesterov), 0.0, 0.0)


@dataclass(frozen=True)
class AdaGrad:
    """AdaGrad, optax's ``adagrad``: s += g²; θ −= lr·g / sqrt(s + eps)."""

    lr: float | Schedule = 0.01
    initial_accumulator_value: float = 0.1
    eps: float = 1e-7
    code = OPT_ADAGRAD

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", resolve_schedule(self.lr))
        object.__setattr__(
            self,
            "initial_accumulator_value",
            _check_nonnegative("initial_accumulator_value", self.initial_accumulator_value),
        )
        object.__setattr__(self, "eps", _check_positive("eps", self.eps))

    def params(self) -> tuple[float, float, float, float]:
        return (self.initial_accumulator_value, self.eps, 0.0, 0.0)


@dataclass(frozen=True)
class RMSProp:
    """RMSProp, optax's ``rmsprop``: s = decay·s + (1 − decay)·g²; θ −= lr·g / sqrt(s + eps)."""

    lr: float | Schedule = 0.01
    decay: float = 0.9
    eps: float = 1e-8
    code = OPT_RMSPROP

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", resolve_schedule(self.lr))
        object.__setattr__(
            self, "decay", _check_unit_interval("decay", self.decay, closed_right=False)
        )
        object.__setattr__(self, "eps", _check_positive("eps", self.eps))

    def params(self) -> tuple[float, float, float, float]:
        return (self.decay, self.eps, 0.0, 0.0)


@dataclass(frozen=True)
class Adam:
    """Adam, optax's ``adam``: bias-corrected moments; θ −= lr·m̂ / (sqrt(v̂) + eps)."""

    lr: float | Schedule = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    code = OPT_ADAM

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", resolve_schedule(self.lr))
        object.__setattr__(self, "b1", _check_unit_interval("b1", self.b1, closed_right=False))
        object.__setattr__(self, "b2", _check_unit_interval("b2", self.b2, closed_right=False))
        object.__setattr__(self, "eps", _check_positive("eps", self.eps))

    def params(self) -> tuple[float, float, float, float]:
        return (self.b1, self.b2, self.eps, 0.0)


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW, optax's ``adamw``: u = Adam's update + weight_decay·w; θ −= lr·u.

    The decay applies to the weights ``w`` only, never to the intercept ``b`` (the same
    convention as the penalties; in optax terms, ``mask={"w": True, "b": False}``).
    """

    weight_decay: float = 1e-4
    code = OPT_ADAMW

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "weight_decay", _check_nonnegative("weight_decay", self.weight_decay)
        )

    def params(self) -> tuple[float, float, float, float]:
        return (self.b1, self.b2, self.eps, self.weight_decay)


Optimizer = SGD | AdaGrad | RMSProp | Adam | AdamW
_OPTIMIZER_NAMES = {
    "sgd": lambda: SGD(),
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adagrad": lambda: AdaGrad(),
    "rmsprop": lambda: RMSProp(),
    "adam": lambda: Adam(),
    "adamw": lambda: AdamW(),
}


def resolve_optimizer(optimizer: str | Optimizer) -> Optimizer:
    """Turn an optimizer name or spec into a spec; unknown names raise ``ValueError``."""
    if isinstance(optimizer, SGD | AdaGrad | RMSProp | Adam):
        return optimizer
    if isinstance(optimizer, str) and optimizer in _OPTIMIZER_NAMES:
        return _OPTIMIZER_NAMES[optimizer]()
    raise ValueError(
        f"optimizer must be one of {sorted(_OPTIMIZER_NAMES)} or an optimizer spec, "
        f"got {optimizer!r}"
    )


# ------------------------------------------------------------------------ penalties

_PENALTY_NAMES = (None, "l2", "l1", "elasticnet")


def resolve_penalty(penalty: str | None, alpha: float, l1_ratio: float) -> tuple[float, float]:
    """Lower a penalty to its two strengths ``(l2, l1)`` on the weights.

    The penalty term is ``alpha * ((1 − ρ)/2 · ‖w‖² + ρ · ‖w‖₁)`` with ρ = 0 for ``"l2"``,
    1 for ``"l1"`` and ``l1_ratio`` for ``"elasticnet"`` (scikit-learn's convention), so
    ``l2 = alpha·(1 − ρ)`` and ``l1 = alpha·ρ``; its (sub)gradient is ``l2·w + l1·sign(w)``.
    """
    if penalty not in _PENALTY_NAMES:
        raise ValueError(f"penalty must be one of {list(_PENALTY_NAMES)}, got {penalty!r}")
    alpha = _check_nonnegative("alpha", alpha)
    l1_ratio = _check_unit_interval("l1_ratio", l1_ratio)
    if penalty is None:
        return 0.0, 0.0
    rho = {"l2": 0.0, "l1": 1.0, "elasticnet": l1_ratio}[penalty]
    return alpha * (1.0 - rho), alpha * rho


# ------------------------------------------------------------------------- lowering


class LoweredModel(NamedTuple):
    """The model as plain numbers: what every backend's ``loss_grad`` receives.

    Attributes
    ----------
    loss_code : int
        One of ``LOSS_CODES`` (``LOSS_SQUARED``, ``LOSS_HUBER``, ...).
    loss_param : float
        The epsilon of ``huber`` and of the two epsilon-insensitive losses; 0 otherwise.
    l2, l1 : float
        Penalty strengths on the weights: the penalty adds ``l2/2·‖w‖² + l1·‖w‖₁``.
    fit_intercept : bool
        Whether ``theta[-1]`` (the intercept) is trained; if not, its gradient is 0.
    max_dloss : float
        Each sample's loss derivative d loss / d p (each of the K, for ``multinomial``)
        is clipped to ``[-max_dloss, max_dloss]`` before it is weighted and summed into
        the gradient; the loss itself is not clipped. ``inf`` (the default, fastgd's)
        clips nothing; the scikit-learn estimators pass 1e12, scikit-learn SGD's
        ``MAX_DLOSS``.
    intercept_decay : float
        The intercept's gradient is multiplied by this factor (scikit-learn SGD damps the
        intercept's updates by 0.01 on sparse X, its ``SPARSE_INTERCEPT_DECAY``); 1.0 (the
        default) leaves it as it is.
    intercept_slope : float
        The objective adds ``intercept_slope·b`` for each intercept ``b`` (unweighted, like
        the penalty): the one-class SVM's ``nu·b`` (:class:`OneClassHinge`); its gradient is
        that constant on the intercepts when they are fitted. 0 (the default) for the other
        losses.
    sklearn_sparse_norms : bool
        Per-sample SGD on a sparse X reports scikit-learn's objective (what its ``tol``
        watches): the penalty term uses norms of the weights kept as scikit-learn's
        ``WeightVector`` keeps them — the full norms when the fit starts, multiplied by
        the l2 shrink's square (absolute value) at each step, and replaced after each
        nonzero update by the norms of the entries the row stores (not updated by the l1
        truncation). False (the default) reports the exact penalty. Ignored elsewhere.
    """

    loss_code: int
    loss_param: float
    l2: float
    l1: float
    fit_intercept: bool
    max_dloss: float = math.inf
    intercept_decay: float = 1.0
    intercept_slope: float = 0.0
    sklearn_sparse_norms: bool = False


class LoweredOptimizer(NamedTuple):
    """The optimizer and its schedule as plain numbers: what ``init_state``/``update`` receive.

    Attributes
    ----------
    code : int
        ``OPT_SGD``, ``OPT_ADAGRAD``, ``OPT_RMSPROP``, ``OPT_ADAM`` or ``OPT_ADAMW``.
    params : tuple of 4 floats
        SGD: (momentum, nesterov 0/1, 0, 0); AdaGrad: (initial_accumulator_value, eps, 0, 0);
        RMSProp: (decay, eps, 0, 0); Adam: (b1, b2, eps, 0); AdamW: (b1, b2, eps, weight_decay).
    schedule_code : int
        ``SCHED_CONSTANT``, ``SCHED_INVSCALING``, ``SCHED_EXPONENTIAL``, ``SCHED_COSINE`` or
        ``SCHED_OPTIMAL``, ``SCHED_PA1`` or ``SCHED_PA2``.
    schedule_params : tuple of 3 floats
        constant: (lr, 0, 0); invscaling: (lr0, power_t, 0);
        exponential: (lr0, decay_rate, decay_steps); cosine: (lr0, decay_steps, final_fraction);
        optimal: (alpha, t0, 0); pa1, pa2: (C, 0, 0), C also the learning rate of the
        penalty.
    average : int
        Averaging of the iterates (scikit-learn's ``average``): 0 for none, else the update
        ``a`` from which the running mean of the parameters after each update is kept,
        ``avg += (theta − avg) / (t − a + 1)`` after update t >= a (in the state's third
        slot); 1 averages from the first update.
    """

    code: int
    params: tuple[float, float, float, float]
    schedule_code: int
    schedule_params: tuple[float, float, float]
    average: int = 0


def check_max_dloss(max_dloss: object) -> float:
    """``max_dloss`` as a float in (0, inf], or a ``ValueError`` naming it."""
    is_real = isinstance(max_dloss, numbers.Real) and not isinstance(max_dloss, bool)
    value = float(max_dloss) if is_real else math.nan
    if not value > 0:  # also NaN and non-numbers
        raise ValueError(f"max_dloss must be a positive number or inf, got {max_dloss!r}")
    return value


def lower_model(
    loss: Loss, l2: float, l1: float, fit_intercept: bool, max_dloss: float = math.inf
) -> LoweredModel:
    """Lower a loss spec, penalty strengths and derivative clip to a :class:`LoweredModel`.

    ``max_dloss`` is checked (see :func:`check_max_dloss`): a ``ValueError`` names it.
    """
    slope = loss.nu if isinstance(loss, OneClassHinge) else 0.0
    return LoweredModel(
        int(loss.code), float(loss.param()), float(l2), float(l1), fit_intercept,
        check_max_dloss(max_dloss), intercept_slope=float(slope),
    )


def lower_optimizer(optimizer: Optimizer, average: int = 0) -> LoweredOptimizer:
    """Lower an optimizer spec (and its schedule) to a :class:`LoweredOptimizer`, with the
    update ``average`` from which the iterates are averaged (0: none)."""
    schedule = optimizer.lr
    return LoweredOptimizer(
        int(optimizer.code),
        tuple(float(p) for p in optimizer.params()),
        int(schedule.code),
        tuple(float(p) for p in schedule.params()),
        int(average),
    )


def check_average(average: object) -> int:
    """``average`` (False, True or an int >= 1) as the update averaging starts from (0 for
    none, True is 1), or a ``ValueError`` naming it."""
    if isinstance(average, bool):
        return int(bool(average))
    if isinstance(average, numbers.Integral) and int(average) >= 1:
        return int(average)
    raise ValueError(f"average must be False, True or an int >= 1, got {average!r}")
