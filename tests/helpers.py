"""Problems, tolerances and comparisons shared by the test modules."""

from __future__ import annotations

import os

import numpy as np

import fastgd
from fastgd.specs import (
    LoweredModel,
    LoweredOptimizer,
    lower_optimizer,
    resolve_loss,
)

#: Backends under test: every one that imports; ``FASTGD_TEST_BACKENDS=numpy,jax pytest``
#: narrows the run to some of them.
_ONLY = os.environ.get("FASTGD_TEST_BACKENDS")
BACKENDS = [
    name for name in fastgd.available_backends() if not _ONLY or name in _ONLY.split(",")
]

#: The small problem every trajectory test uses, fixed so that the jax backend compiles
#: one program per configuration and reuses it across the test matrix.
N, D, EPOCHS = 37, 5, 3
#: Mini-batch size that does not divide N (37 = 4·8 + 5): the last batch is short.
MINI = 8
#: Batch modes: full batch (None), a mini-batch not dividing n, per-sample SGD.
BATCH_MODES = {"full": None, "mini": MINI, "sgd": 1}

LOSSES = ("squared", "huber", "logistic")
#: The losses added with K outputs and sample weights (scikit-learn's SGD losses, softmax).
NEW_LOSSES = (
    "hinge", "squared_hinge", "modified_huber", "epsilon_insensitive",
    "squared_epsilon_insensitive", "multinomial", "perceptron",
)
ALL_LOSSES = LOSSES + NEW_LOSSES
#: Outputs of the K > 1 problems (classes for multinomial and one-vs-rest).
K_MULTI = 3
PENALTIES = (None, "l2", "l1", "elasticnet")
#: Penalty strength large enough that a wrong penalty term changes the result visibly.
ALPHA, L1_RATIO = 0.05, 0.4

#: One spec per optimizer, with hyper-parameters away from the defaults where that makes
#: a wrong formula visible (e.g. a weight decay that moves the weights).
OPTIMIZERS = {
    "sgd": fastgd.SGD(lr=0.05),
    "momentum": fastgd.SGD(lr=0.03, momentum=0.8),
    "nesterov": fastgd.SGD(lr=0.03, momentum=0.7, nesterov=True),
    "adagrad": fastgd.AdaGrad(lr=0.1, initial_accumulator_value=0.2, eps=1e-6),
    "rmsprop": fastgd.RMSProp(lr=0.01, decay=0.8, eps=1e-7),
    "adam": fastgd.Adam(lr=0.05, b1=0.8, b2=0.99, eps=1e-7),
    "adamw": fastgd.AdamW(lr=0.05, b1=0.85, b2=0.995, eps=1e-8, weight_decay=0.1),
}

#: Schedules for whole training runs (15 updates): each one moves the rate visibly.
SCHEDULES = {
    "invscaling": fastgd.invscaling(0.08, power_t=0.4),
    "exponential": fastgd.exponential(0.08, decay_rate=0.5, decay_steps=5),
    "cosine": fastgd.cosine(0.08, decay_steps=9, final_fraction=0.1),
}


def covering_cases() -> list[tuple[str, str, str]]:
    """(loss, optimizer, batch mode) triples where every loss meets every optimizer once.

    Batch modes cycle along the 21 pairs; as 7 optimizers ≡ 1 (mod 3), every optimizer and
    every loss also meets every batch mode. Used for the float32 runs, a third of the
    full product (and of the jax programs to compile).
    """
    modes = list(BATCH_MODES)
    pairs = [(loss, name) for loss in LOSSES for name in OPTIMIZERS]
    return [(loss, name, modes[i % len(modes)]) for i, (loss, name) in enumerate(pairs)]


#: float32 carries 24 bits: one rounding is at most 2**-24 ≈ 6e-8 relative.
F32_EPS = float(np.finfo(np.float32).eps)


def problem(loss: str, dtype=np.float64, n: int = N, d: int = D, seed: int = 3,
            n_outputs: int | None = None):
    """Data for ``loss`` as a user passes them to ``fit``.

    Regression: a noisy linear regression, spread (scale 2 plus outliers) so that the
    Huber and epsilon-insensitive losses see residuals on both sides of their
    thresholds; with ``n_outputs`` K, K such targets (columns of different scales).
    Binary losses: {0, 1} labels, or K one-hot columns of a K-class problem (one-vs-rest).
    Multinomial: integer class codes of a ``n_outputs``-class problem (default K_MULTI).
    """
    kind = resolve_loss(loss).kind
    if kind == "multinomial" or (kind == "binary" and n_outputs is not None):
        X, codes = classes_problem(n, d, n_outputs or K_MULTI, dtype, seed)
        return (X, codes) if kind == "multinomial" else (X, np.eye(n_outputs, dtype=dtype)[codes])
    if kind == "binary":
        X, y, _ = fastgd.make_classification(n, d, dtype=dtype, seed=seed)
        return X, y
    X, y, _ = fastgd.make_regression(n, d, noise=0.5, dtype=dtype, seed=seed)
    y = (2.0 * y).astype(dtype)
    y[::7] += 4.0
    if n_outputs is None:
        return X, y
    scales = np.linspace(1.0, -0.5, n_outputs)
    return X, (y[:, None] * scales + np.arange(n_outputs)).astype(dtype)


def classes_problem(n: int, d: int, k: int, dtype, seed: int):
    """Features and integer class codes 0..k-1 (every class present) of a noisy linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    scores = X @ rng.standard_normal((d, k)) + 0.7 * rng.standard_normal((n, k))
    codes = np.argmax(scores, axis=1)
    codes[:k] = np.arange(k)
    return X, codes


def sample_weights(n: int = N, seed: int = 5) -> np.ndarray:
    """Uneven positive weights, a few of them zero."""
    w = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    w[::9] = 0.0
    return w


def kernel_data(loss: str, X, y, weight=None):
    """The (Y, weight) a backend's kernels see for ``fit(X, y, loss=..., sample_weight=weight)``."""
    from fastgd.data import check_sample_weight, check_targets

    Y = check_targets(y, X, resolve_loss(loss))[0]
    if weight is not None:
        weight = check_sample_weight(weight, X.shape[0], X.dtype)
    return Y, weight


def model_for(
    loss, penalty=None, alpha=ALPHA, l1_ratio=L1_RATIO, fit_intercept=True
) -> LoweredModel:
    """The lowered model ``fastgd.fit`` should build for these arguments.

    The penalty strengths are written out here from the documented convention (the
    penalty is ``alpha·((1 − ρ)/2·‖w‖² + ρ·‖w‖₁)`` with ρ = 0, 1 or ``l1_ratio``), not
    taken from the library, so that the oracle checks the library's convention too.
    """
    rho = {None: None, "l2": 0.0, "l1": 1.0, "elasticnet": l1_ratio}[penalty]
    l2, l1 = (0.0, 0.0) if rho is None else (alpha * (1.0 - rho), alpha * rho)
    spec = resolve_loss(loss)
    return LoweredModel(spec.code, float(spec.param()), l2, l1, fit_intercept)


def lowered(optimizer) -> LoweredOptimizer:
    """The lowered form of an optimizer spec."""
    return lower_optimizer(optimizer)


def theta_of(result: fastgd.FitResult) -> np.ndarray:
    """Weights then intercept of a fit, as float64."""
    return np.append(np.asarray(result.coef, dtype=np.float64), result.intercept)


def rel_err(actual, expected) -> float:
    """``max|actual − expected| / max|expected|`` (the inf-norm relative error)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(actual - expected), initial=0.0)) / scale


def as_rows(X: np.ndarray) -> list[list[float]]:
    """A matrix as Python lists of Python floats (exact, float32 values included)."""
    return np.asarray(X, dtype=np.float64).tolist()


def as_list(v) -> list[float]:
    """A vector as a list of Python floats (exact)."""
    return np.asarray(v, dtype=np.float64).tolist()
