"""scikit-learn's SGD on sparse X, the parts that differ from its dense rules: the objective
its ``tol`` watches and the l1 truncation, on every backend.

- scikit-learn's per-sample objective adds ``alpha·((1 − ρ)/2·‖w‖² + ρ·‖w‖₁)`` with norms
  its ``WeightVector`` keeps approximately on sparse rows (each nonzero update replaces
  them by the norms of the row's entries); ``fit(sklearn_sparse_norms=True)``, which the
  estimators set on sparse X, reports the same objective, so that the default
  ``tol=1e-3`` stops at scikit-learn's epoch.
- l1 per sample truncates only the features a sparse row stores (scikit-learn's sparse
  rule), with or without momentum, on every backend.
- Passive-aggressive rates and the one-class SVM (its intercept slope ``nu·b``) on CSR.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import rel_err
from test_estimators import assert_same_model, quietly
from test_sklearn_dropin import breast_cancer, diabetes
from test_sparse_estimators import sparsified, text_corpus

import fastgd

pytest.importorskip("sklearn")
from sklearn.linear_model import SGDClassifier, SGDRegressor  # noqa: E402

#: (data, labels, penalty, shuffle) per backend: numba and jax cover the grid's corners;
#: numpy (a Python step per sample) two of them.
_CASES = {
    "numba": [("corpus", "binary", "l2", False), ("corpus", "ovr", "elasticnet", True),
              ("corpus", "ovr", "l2", False), ("cancer", "binary", "elasticnet", True)],
    "jax": [("corpus", "binary", "elasticnet", False), ("corpus", "ovr", "l2", True),
            ("cancer", "binary", "l2", True)],
    "numpy": [("corpus", "binary", "elasticnet", True), ("cancer", "binary", "l2", False)],
}  # fmt: skip


def _classification(name: str, labels: str):
    if name == "corpus":
        X, y = text_corpus()
        return X, (y == 1) if labels == "binary" else y
    X, y = breast_cancer()
    return sparsified(X), y


@pytest.mark.parametrize(
    ("backend", "case"), [(b, c) for b, cases in _CASES.items() for c in cases]
)
def test_default_tol_stops_at_sgdclassifiers_epoch_on_csr(backend, case):
    """Default settings (hinge, l2 or elasticnet, tol=1e-3): n_iter_, t_ and the model of
    SGDClassifier on the same CSR (the exact penalty would stop elsewhere: 23 epochs
    against scikit-learn's 28 on the corpus)."""
    name, labels, penalty, shuffle = case
    X, y = _classification(name, labels)
    params = dict(penalty=penalty, shuffle=shuffle, random_state=0)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer)


@pytest.mark.parametrize("backend", ["numba", "jax"])
@pytest.mark.parametrize("penalty", ["l2", "elasticnet"])
def test_default_tol_stops_at_sgdregressors_epoch_on_csr(backend, penalty):
    X, y = diabetes()
    params = dict(penalty=penalty, random_state=0, eta0=0.005)
    peer = quietly(SGDRegressor(**params), sparsified(X), y)
    ours = fastgd.GDRegressor(backend=backend, **params).fit(sparsified(X), y)
    assert_same_model(ours, peer)


def _sklearn_objective(X, y, alpha, epochs):
    """scikit-learn's per-epoch objective of hinge + l2 at a constant rate 0.01, in order,
    intercept steps × 0.01: a plain loop over the rows with its norm bookkeeping."""
    w, b = np.zeros(X.shape[1]), 0.0
    sq = 0.0
    out = []
    for _ in range(epochs):
        total = 0.0
        for i in range(X.shape[0]):
            cols = X.indices[X.indptr[i] : X.indptr[i + 1]]
            vals = X.data[X.indptr[i] : X.indptr[i + 1]]
            s = 1.0 if y[i] else -1.0
            p = vals @ w[cols] + b
            total += max(0.0, 1.0 - s * p) + alpha * 0.5 * sq
            update = 0.01 * s if s * p < 1.0 else 0.0
            w *= 1.0 - 0.01 * alpha
            sq *= (1.0 - 0.01 * alpha) ** 2
            if update:
                w[cols] += update * vals
                sq = float(w[cols] @ w[cols])
                b += 0.01 * update
        out.append(total / X.shape[0])
    return out


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_the_reported_objective_is_scikit_learns(backend):
    """The epoch objectives fit reports with sklearn_sparse_norms (through one call per
    epoch: a callback) equal a direct loop's; without it, the exact penalty's."""
    X, y = text_corpus()
    X, y = X[:120], y[:120] == 1
    alpha = 0.05
    expected = _sklearn_objective(X, y, alpha, 3)
    for flag in (True, False):
        seen = []
        record = seen.append
        result = fastgd.fit(X, y, loss="hinge", lr=0.01, batch_size=1, epochs=3, penalty="l2",
                            alpha=alpha, shuffle=False, intercept_decay=0.01, backend=backend,
                            sklearn_sparse_norms=flag,
                            callback=lambda e, loss, c, i, record=record: record(loss))  # fmt: skip
        gap = np.max(np.abs(np.array(seen) - expected))
        assert (gap < 1e-12) if flag else (gap > 1e-4), (flag, gap)
    assert result.n_epochs == 3


def test_the_flag_leaves_a_dense_x_and_batches_alone():
    X, y = breast_cancer()
    runs = [fastgd.fit(X, y, loss="hinge", penalty="elasticnet", alpha=1e-3, lr=0.01,
                       batch_size=1, epochs=2, seed=0, tol=1e-3, sklearn_sparse_norms=flag)
            for flag in (False, True)]  # fmt: skip
    np.testing.assert_array_equal(runs[0].coef, runs[1].coef)
    np.testing.assert_array_equal(runs[0].loss_history, runs[1].loss_history)
    batched = [fastgd.fit(sparsified(X), y, loss="hinge", penalty="l2", batch_size=16, lr=0.01,
                          epochs=2, seed=0, backend="numba", sklearn_sparse_norms=flag,
                          tol=1e-3)  # fmt: skip
               for flag in (False, True)]
    np.testing.assert_array_equal(batched[0].loss_history, batched[1].loss_history)


def test_a_bad_flag_is_named():
    X, y = breast_cancer()
    with pytest.raises(TypeError, match="sklearn_sparse_norms"):
        fastgd.fit(sparsified(X), y, loss="hinge", sklearn_sparse_norms="yes")


# ------------------------------------------------------------ l1 on sparse rows


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_per_sample_elasticnet_equals_sgdclassifier_on_csr(backend):
    """The sparse truncation rule (the row's features only) on numpy and jax."""
    X, y = text_corpus()
    params = dict(penalty="elasticnet", alpha=1e-4, random_state=1, tol=None, max_iter=3)
    for labels in (y == 0, y):
        peer = quietly(SGDClassifier(**params), X, labels)
        ours = fastgd.GDClassifier(backend=backend, **params).fit(X, labels)
        assert_same_model(ours, peer)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_per_sample_l1_on_csr_is_the_same_on_every_backend(optimizer):
    """The sparse rule truncates only the row's weights: every backend the same model (the
    dense rule, which truncates every weight, is far from it)."""
    X, y = text_corpus()
    X, Y = X[:200], np.eye(3)[y[:200]]
    kw = dict(loss="hinge", optimizer=optimizer, batch_size=1, epochs=2, penalty="elasticnet",
              l1_ratio=0.5, alpha=1e-3, lr=0.05, seed=3)  # fmt: skip
    coefs = {b: fastgd.fit(X, Y, backend=b, **kw).coef for b in ("numpy", "numba", "jax")}
    for backend in ("numba", "jax"):
        np.testing.assert_allclose(coefs[backend], coefs["numpy"], rtol=0, atol=1e-12)
    dense = fastgd.fit(X.toarray(), Y, backend="numpy", **kw).coef
    assert np.max(np.abs(dense - coefs["numpy"])) > 1e-3
    assert sp.issparse(X)


# --------------------------------- passive-aggressive steps and the one-class SVM on CSR


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
@pytest.mark.parametrize("rate", ["pa1", "pa2"])
def test_passive_aggressive_rates_equal_sgdclassifier_on_csr(backend, rate):
    X, y = text_corpus()
    params = dict(learning_rate=rate, eta0=0.5, penalty=None, shuffle=True, random_state=0,
                  tol=None, max_iter=2)  # fmt: skip
    for labels in ((y == 1),) if backend == "numpy" else ((y == 1), y):
        peer = quietly(SGDClassifier(**params), X, labels)
        ours = fastgd.GDClassifier(backend=backend, **params).fit(X, labels)
        assert_same_model(ours, peer)


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
@pytest.mark.parametrize("rate", ["pa1", "pa2"])
def test_passive_aggressive_partial_fit_one_row_at_a_time_on_csr(backend, rate):
    """Online pa on sparse rows, one row per partial_fit (a fit of one sample: pa is a
    per-sample step, never a full batch), binary and one-vs-rest, equals scikit-learn."""
    X, y = text_corpus()
    rows = 10 if backend == "jax" else 40  # jax: a dispatch of ~0.3 s per partial_fit here
    spread = np.arange(0, X.shape[0], X.shape[0] // rows)[:rows]  # rows of every class
    X, y = X[spread], y[spread]
    params = dict(learning_rate=rate, eta0=0.5, penalty=None, shuffle=False, random_state=0,
                  tol=None, max_iter=1)  # fmt: skip
    for labels in ((y == 1), y):
        classes = np.unique(labels)
        peer = SGDClassifier(**params)
        ours = fastgd.GDClassifier(backend=backend, **params)
        for i in range(X.shape[0]):
            peer.partial_fit(X[i : i + 1], labels[i : i + 1], classes=classes)
            ours.partial_fit(X[i : i + 1], labels[i : i + 1], classes=classes)
        assert_same_model(ours, peer)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_passive_aggressive_on_one_sparse_sample_equals_dense(backend):
    """fit of a single CSR row with pa1, K = 1 and K = 3, three epochs: numpy's dense fit."""
    X, y = text_corpus()
    row = X[3:4]
    for targets in (np.array([1.0]), np.array([[1.0, 0.0, 0.0]])):
        kw = dict(loss="hinge", lr=fastgd.PassiveAggressive(0.5, "pa1"), batch_size=1,
                  epochs=3, seed=0, intercept_decay=0.01, relative_weights=False)  # fmt: skip
        ours = fastgd.fit(row, targets, backend=backend, **kw)
        dense = fastgd.fit(row.toarray(), targets, backend="numpy", **kw)
        np.testing.assert_allclose(ours.coef, dense.coef, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.intercept, dense.intercept, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.loss_history, dense.loss_history, rtol=1e-12)
        assert np.any(ours.coef != 0.0)


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_one_class_svm_equals_sgdoneclasssvm_on_csr(backend):
    """Default tol (the objective with nu·b), shuffled; averaging; a constant rate."""
    from sklearn.linear_model import SGDOneClassSVM

    X, _ = text_corpus()
    cases = [dict(), dict(average=True, shuffle=False, tol=None, max_iter=3)]
    if backend != "numpy":
        cases.append(dict(learning_rate="constant", eta0=0.01, shuffle=False))
    for kw in cases:
        peer = quietly(SGDOneClassSVM(nu=0.3, random_state=0, **kw), X, None)
        ours = fastgd.GDOneClassSVM(nu=0.3, random_state=0, backend=backend, **kw).fit(X)
        assert rel_err(ours.coef_, peer.coef_) <= 1e-10
        assert abs(ours.offset_[0] - peer.offset_[0]) <= 1e-10
        assert (ours.n_iter_, ours.t_) == (peer.n_iter_, peer.t_)
        np.testing.assert_allclose(ours.decision_function(X), peer.decision_function(X),
                                   rtol=0, atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_one_class_slope_in_sparse_batches_equals_numpys_dense(backend):
    """The intercept slope in the sparse batch gradients (mini-batch and full batch)."""
    X, _ = text_corpus()
    X = X[:150]
    ones = np.ones(X.shape[0])
    for batch in (8, None):
        kw = dict(loss=fastgd.OneClassHinge(0.3), penalty="l2", alpha=0.3, lr=0.05, epochs=2,
                  batch_size=batch, seed=0, intercept_decay=0.01)  # fmt: skip
        ours = fastgd.fit(X, ones, backend=backend, **kw)
        dense = fastgd.fit(X.toarray(), ones, backend="numpy", **kw)
        np.testing.assert_allclose(ours.coef, dense.coef, rtol=0, atol=1e-12)
        assert abs(ours.intercept - dense.intercept) < 1e-12
        np.testing.assert_allclose(ours.loss_history, dense.loss_history, rtol=1e-12)


def _model(estimator) -> np.ndarray:
    """coef_ and intercept_ side by side, in float64."""
    coef = np.atleast_2d(estimator.coef_)
    return np.c_[coef, np.reshape(estimator.intercept_, (coef.shape[0], 1))].astype(np.float64)


def _rel(a, b) -> float:
    return float(np.max(np.abs(_model(a) - _model(b))) / np.max(np.abs(_model(b))))


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_float32_csr_equals_sgdclassifier_to_float32_rounding(backend, loss):
    """float32 CSR (binary and one-vs-rest, in order and shuffled): coef_ float32 as
    scikit-learn's (intercept_ too: scikit-learn keeps a binary intercept_ in float64),
    the model within a few times the float32 rounding scale of the same fit —
    scikit-learn's own float32 model against its float64 one, measured here (3e-7 to
    1e-6 of the largest parameter on the corpus). Measured ratios to that scale: numba
    0.9-1.1 (its loop keeps the weights in float64 and rounds once, as scikit-learn's
    keeps its sums), numpy and jax 1.7-6.8 (float32 weights rounded at every step):
    bounds 2 and 10."""
    X, y = text_corpus()
    X32 = X.astype(np.float32)
    for labels, shuffle in (("binary", True), ("ovr", False), ("ovr", True)):
        yy = (y == 1) if labels == "binary" else y
        kw = dict(loss=loss, shuffle=shuffle, random_state=0, max_iter=4, tol=None)
        peer32 = quietly(SGDClassifier(**kw), X32, yy)
        scale = _rel(peer32, quietly(SGDClassifier(**kw), X, yy))
        assert 1e-8 < scale < 1e-5  # float32 rounding, not a different model
        ours = quietly(fastgd.GDClassifier(backend=backend, **kw), X32, yy)
        assert ours.coef_.dtype == peer32.coef_.dtype == np.float32
        assert ours.intercept_.dtype == np.float32
        bound = (2 if backend == "numba" else 10) * scale
        assert _rel(ours, peer32) <= bound, (labels, shuffle, _rel(ours, peer32), scale)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_float32_csr_regressor_equals_sgdregressor_to_float32_rounding(backend):
    X, y = diabetes()
    X64 = sparsified(X)
    X32 = X64.astype(np.float32)
    kw = dict(random_state=0, eta0=0.005, max_iter=4, tol=None)
    peer32 = quietly(SGDRegressor(**kw), X32, y)
    scale = _rel(peer32, quietly(SGDRegressor(**kw), X64, y))
    assert 1e-9 < scale < 1e-5
    ours = quietly(fastgd.GDRegressor(backend=backend, **kw), X32, y)
    assert ours.coef_.dtype == peer32.coef_.dtype == np.float32
    bound = (2 if backend == "numba" else 10) * scale  # see the classifier's test
    assert _rel(ours, peer32) <= bound, (_rel(ours, peer32), scale)
