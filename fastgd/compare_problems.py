"""The problems of ``fastgd compare``: model families, their data and their objective.

A family is a model and its training objective (loss and penalty) on one kind of data:
squared-error regression, a linear SVM (hinge), logistic regression, a softmax over
K = 10 classes and logistic regression on sparse text-like rows. Each family has one or
more problems, an algorithm to train it: per-sample SGD (batch 1, in order, the
recurrence scikit-learn's SGD walks), mini-batch Adam (batch 64, shuffled) or full-batch
GD. Every problem of a family minimises the same objective (:func:`objective`), so the
time-to-a-model curves of one family are comparable across algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .specs import SGD, Adam, Optimizer

__all__ = [
    "FAMILIES",
    "PROBLEMS",
    "SPARSE_FEATURES",
    "SPARSE_ROW_NONZEROS",
    "Family",
    "Problem",
    "make_data",
    "objective",
    "select_problems",
]

#: Classes of the multinomial family.
N_CLASSES = 10
#: Columns and non-zeros per row of the sparse family's rows (bag-of-words-like).
SPARSE_FEATURES = 4_096
SPARSE_ROW_NONZEROS = 24


@dataclass(frozen=True)
class Family:
    """A model and its training objective.

    Attributes
    ----------
    name : str
        Used on the command line (selects all its problems) and in the JSON.
    label : str
        Human description for the plot.
    loss : str
        fastgd's loss name.
    penalty : str or None; alpha : float
        The l2 term ``alpha/2·‖w‖²`` (never on the intercept), or none.
    sparse : bool
        Whether X is a ``scipy.sparse`` CSR matrix (its shape: n rows,
        :data:`SPARSE_FEATURES` columns, whatever the size's d).
    intercept_decay : float
        ``fit(intercept_decay=...)``: scikit-learn's SGD damps the intercept's steps by
        0.01 on sparse X, so the sparse family's fastgd rows do too (1.0: no damping).
    """

    name: str
    label: str
    loss: str
    penalty: str | None = None
    alpha: float = 0.0
    sparse: bool = False
    intercept_decay: float = 1.0


FAMILIES: dict[str, Family] = {
    "squared": Family("squared", "squared error (regression)", "squared"),
    "hinge": Family("hinge", "hinge + l2 1e-4 (linear SVM)", "hinge", "l2", 1e-4),
    "logistic": Family("logistic", "logistic + l2 1e-4", "logistic", "l2", 1e-4),
    "multinomial": Family("multinomial", f"softmax, K={N_CLASSES}, + l2 1e-4", "multinomial",
                          "l2", 1e-4),
    "sparse": Family("sparse", f"logistic + l2 1e-4, sparse X ({SPARSE_ROW_NONZEROS} "
                     f"non-zeros of {SPARSE_FEATURES} per row)", "logistic", "l2", 1e-4,
                     sparse=True, intercept_decay=0.01),
}


@dataclass(frozen=True)
class Problem:
    """One training problem of the comparison: a family and an algorithm.

    Attributes
    ----------
    name : str
        Short name used on the command line and in the table.
    label : str
        Human description for the plot.
    optimizer : Optimizer
        The optimizer spec (with its learning rate).
    batch_size : int or None
        1 for SGD, k for mini-batches (capped at n), None for full batch.
    epochs : int
        Epochs per timed fit.
    shuffle : bool
        Whether each epoch's order is a fresh permutation (seed 0).
    family : str
        Key of :data:`FAMILIES`.
    curve_epochs : int
        Epochs of the run that records the objective after every epoch.
    """

    name: str
    label: str
    optimizer: Optimizer
    batch_size: int | None
    epochs: int
    shuffle: bool
    family: str = "squared"
    curve_epochs: int = 5

    @property
    def spec(self) -> Family:
        """The problem's :class:`Family`."""
        return FAMILIES[self.family]

    @property
    def lr(self) -> float:
        """The optimizer's constant learning rate."""
        return float(self.optimizer.lr.lr0)

    @property
    def kind(self) -> str:
        """``"sample"`` (batch 1), ``"minibatch"`` or ``"full"``."""
        if self.batch_size is None:
            return "full"
        return "sample" if self.batch_size == 1 else "minibatch"


def _problems(*problems: Problem) -> dict[str, Problem]:
    return {p.name: p for p in problems}


PROBLEMS: dict[str, Problem] = _problems(
    Problem("sgd", "SGD, batch 1, lr 1e-3", SGD(lr=1e-3), 1, 1, False, "squared", 5),
    Problem("adam", "Adam, batch 64, lr 1e-3", Adam(lr=1e-3), 64, 2, True, "squared", 5),
    Problem("gd", "full-batch GD, lr 0.1", SGD(lr=0.1), None, 20, False, "squared", 50),
    Problem("hinge-sgd", "hinge SGD, batch 1, lr 0.01", SGD(lr=0.01), 1, 1, False, "hinge", 5),
    Problem("hinge-adam", "hinge Adam, batch 64, lr 0.01", Adam(lr=0.01), 64, 2, True,
            "hinge", 5),
    Problem("logistic-sgd", "logistic SGD, batch 1, lr 0.01", SGD(lr=0.01), 1, 1, False,
            "logistic", 5),
    Problem("logistic-gd", "logistic full-batch GD, lr 1", SGD(lr=1.0), None, 20, False,
            "logistic", 50),
    Problem("softmax-adam", "softmax Adam, batch 64, lr 0.01", Adam(lr=0.01), 64, 2, True,
            "multinomial", 5),
    Problem("softmax-gd", "softmax full-batch GD, lr 1", SGD(lr=1.0), None, 20, False,
            "multinomial", 50),
    Problem("sparse-sgd", "sparse logistic SGD, batch 1, lr 0.1", SGD(lr=0.1), 1, 1, False,
            "sparse", 5),
)


def select_problems(names: tuple[str, ...]) -> tuple[str, ...]:
    """Problem names for ``--problems``: each item a problem or a family (all its problems),
    in :data:`PROBLEMS`' order.

    Raises
    ------
    ValueError
        For a name that is neither, naming it and the choices.
    """
    chosen: list[str] = []
    for name in names:
        if name in PROBLEMS:
            found = [name]
        elif name in FAMILIES:
            found = [p.name for p in PROBLEMS.values() if p.family == name]
        else:
            raise ValueError(
                f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)} or a family "
                f"({', '.join(FAMILIES)})"
            )
        chosen.extend(found)
    return tuple(p for p in PROBLEMS if p in chosen)


# --------------------------------------------------------------------------- data


def _regression(rng: np.random.Generator, n: int, d: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``fastgd.make_regression``'s problem: y = X @ coef + 0.5 + noise 0.1."""
    X = rng.standard_normal((n, d)).astype(dtype)
    coef = rng.standard_normal(d).astype(dtype)
    y = (X @ coef + 0.5 + 0.1 * rng.standard_normal(n)).astype(dtype)
    return X, y


def _binary(rng: np.random.Generator, n: int, d: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Labels in {0, 1} drawn from sigmoid(X @ coef / sqrt(d) · 4): not separable."""
    X = rng.standard_normal((n, d)).astype(dtype)
    coef = rng.standard_normal(d)
    margin = 4.0 * (X @ coef) / np.sqrt(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-margin))).astype(dtype)
    return X, y


def _classes(rng: np.random.Generator, n: int, d: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Class codes 0..K-1: the argmax of X @ W / sqrt(d) · 3 plus Gumbel noise (a softmax
    model's draws)."""
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, N_CLASSES))
    scores = 3.0 * (X @ W) / np.sqrt(d) + rng.gumbel(size=(n, N_CLASSES))
    return X, np.argmax(scores, axis=1).astype(np.int64)


def _distinct_draws(rng: np.random.Generator, weights: np.ndarray, n: int, k: int) -> np.ndarray:
    """For each of n rows, k distinct columns drawn with probabilities ``weights`` one after
    the other, a repeat drawn again (sampling without replacement), sorted.

    Vectorised: 4k draws with replacement per row, the first k distinct kept; the rare
    row with fewer than k distinct draws is drawn again on its own.

    Returns
    -------
    ndarray of int64, shape (n, k)
    """
    m = 4 * k
    draws = np.searchsorted(np.cumsum(weights), rng.random((n, m)), side="right")
    draws = np.minimum(draws, weights.size - 1)
    order = np.argsort(draws, axis=1, kind="stable")
    ranked = np.take_along_axis(draws, order, axis=1)
    first = np.ones_like(ranked, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    is_first = np.zeros_like(first)
    np.put_along_axis(is_first, order, first, axis=1)  # back in the order drawn
    keys = np.where(is_first, 0, m) + np.arange(m)
    kept = np.argsort(keys, axis=1)[:, :k]
    cols = np.take_along_axis(draws, kept, axis=1)
    for i in np.flatnonzero(is_first.sum(axis=1) < k):
        cols[i] = rng.choice(weights.size, size=k, replace=False, p=weights)
    return np.sort(cols, axis=1)


def _sparse_text(rng: np.random.Generator, n: int, dtype):
    """A bag-of-words-like CSR matrix and {0, 1} labels from a sparse logistic model.

    Each row has :data:`SPARSE_ROW_NONZEROS` distinct columns out of
    :data:`SPARSE_FEATURES`, drawn with Zipf-like frequencies (column j ∝ 1/(j + 10)),
    values log(1 + count) scaled to unit row norm (tf-idf-like).
    """
    import scipy.sparse as sp

    weights = 1.0 / (np.arange(SPARSE_FEATURES) + 10.0)
    weights /= weights.sum()
    k = SPARSE_ROW_NONZEROS
    cols = _distinct_draws(rng, weights, n, k)
    values = np.log1p(rng.integers(1, 5, size=(n, k))).astype(np.float64)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    X = sp.csr_matrix(
        (values.ravel().astype(dtype), cols.ravel(), np.arange(0, n * k + 1, k)),
        shape=(n, SPARSE_FEATURES),
    )
    coef = rng.standard_normal(SPARSE_FEATURES) * 3.0
    margin = X @ coef
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-margin))).astype(dtype)
    return X, y


def make_data(family: str, n: int, d: int, dtype: str, seed: int = 0):
    """The data of ``family`` with n rows (and d columns, the sparse family apart).

    Returns
    -------
    X : ndarray of shape (n, d), or scipy.sparse CSR of shape (n, SPARSE_FEATURES)
    y : ndarray of shape (n,)
        Reals (squared), {0, 1} in X's dtype (binary families) or int64 class codes
        0..K-1 (multinomial).
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if FAMILIES[family].sparse:
        return _sparse_text(rng, n, dt)
    make = {"squared": _regression, "multinomial": _classes}.get(family, _binary)
    return make(rng, n, d, dt)


# ---------------------------------------------------------------------- objective


def _loss_terms(loss: str, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample losses, float64; p of shape (n,) or (n, K)."""
    if loss == "squared":
        return 0.5 * (p - y) ** 2
    if loss == "multinomial":
        top = p.max(axis=1)
        lse = top + np.log(np.exp(p - top[:, None]).sum(axis=1))
        return lse - p[np.arange(p.shape[0]), y.astype(np.int64)]
    s = 2.0 * y - 1.0
    if loss == "hinge":
        return np.maximum(0.0, 1.0 - s * p)
    if loss == "logistic":
        return np.logaddexp(0.0, -s * p)
    raise ValueError(f"no objective for loss {loss!r}")


def objective(family: str, X, y: np.ndarray, theta: np.ndarray) -> float:
    """The training objective of ``family`` at ``theta``, in float64.

    ``mean_i loss(x_i·w + b, y_i) + alpha/2·‖w‖²`` (the family's penalty; none on the
    intercept), the objective fastgd and every peer minimise.

    Parameters
    ----------
    X : ndarray or CSR, shape (n, d); y : ndarray, shape (n,)
    theta : ndarray, shape (d + 1,) or (d + 1, K)
        Weights, then the intercept(s) in the last row.
    """
    spec = FAMILIES[family]
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim == 2 and theta.shape[1] == 1 and spec.loss != "multinomial":
        theta = theta[:, 0]  # one output: p of shape (n,), as y
    w, b = theta[:-1], theta[-1]
    p = X @ w + b  # float64 (theta is), for dense and CSR X
    value = float(np.mean(_loss_terms(spec.loss, np.asarray(p), np.asarray(y, np.float64))))
    if spec.penalty == "l2":
        value += 0.5 * spec.alpha * float(np.sum(w * w))
    return value
