"""Sparse X (scipy.sparse) in fit: input conversions and errors, sparse equal to dense on
every backend, scikit-learn's sparse rules (l1 truncation of the row's features, the
intercept decay) against SGDClassifier on the same CSR."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastgd
from fastgd.specs import optimal

N, D = 40, 9


def _problem(seed: int = 1):
    rng = np.random.default_rng(seed)
    X = sp.random(N, D, density=0.3, format="csr", random_state=seed)
    y = (rng.random(N) < 0.5).astype(np.float64)
    Y3 = np.eye(3)[rng.integers(0, 3, N)]
    codes = rng.integers(0, 3, N).astype(np.float64)
    weight = rng.random(N) + 0.5
    return X, y, Y3, codes, weight


def _arrays(X):
    return [np.array(a, copy=True) for a in (X.data, X.indices, X.indptr)]


def _untouched(X, before):
    for a, b in zip((X.data, X.indices, X.indptr), before, strict=True):
        np.testing.assert_array_equal(a, b)


def _gap(a, b) -> float:
    return max(
        float(np.max(np.abs(a.coef - b.coef))),
        float(np.max(np.abs(np.asarray(a.intercept) - b.intercept))),
        float(np.max(np.abs(a.loss_history - b.loss_history))),
    )


# ------------------------------------------------------------------------- input


def test_formats_dtypes_and_index_types_train_as_the_dense_matrix():
    X, y, *_ = _problem()
    dense = fastgd.fit(X.toarray(), y, loss="hinge", batch_size=4, epochs=2, seed=0)
    unsorted = X.copy()
    for i in range(N):  # reverse each row's entries: unsorted indices
        lo, hi = unsorted.indptr[i], unsorted.indptr[i + 1]
        unsorted.indices[lo:hi] = unsorted.indices[lo:hi][::-1].copy()
        unsorted.data[lo:hi] = unsorted.data[lo:hi][::-1].copy()
    coo = X.tocoo()
    halves = sp.coo_matrix(  # every value stored twice, halved: duplicates
        (np.r_[coo.data, coo.data] / 2, (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
        shape=X.shape,
    )
    wide = X.copy()
    wide.indices = wide.indices.astype(np.int64)
    wide.indptr = wide.indptr.astype(np.int64)
    variants = [X.tocsc(), coo, sp.csr_array(X), unsorted, halves, wide]
    for variant in variants:
        before = _arrays(variant) if variant.format != "coo" else None
        result = fastgd.fit(variant, y, loss="hinge", batch_size=4, epochs=2, seed=0)
        assert _gap(result, dense) < 1e-12, variant.format
        if before is not None:
            _untouched(variant, before)
    ints = sp.csr_matrix((np.arange(1, X.nnz + 1) % 3, X.indices, X.indptr), shape=X.shape)
    result = fastgd.fit(ints, y, loss="hinge", batch_size=4, epochs=2, seed=0)
    assert result.coef.dtype == np.float64
    assert _gap(result, fastgd.fit(ints.toarray(), y, loss="hinge", batch_size=4, epochs=2,
                                   seed=0)) < 1e-12  # fmt: skip
    np.testing.assert_allclose(dense.decision_function(X.tocsc()),  # predictions too
                               dense.decision_function(X.toarray()), rtol=1e-13, atol=1e-15)
    f32 = fastgd.fit(X.astype(np.float32), y, loss="hinge", batch_size=4, epochs=2, seed=0,
                     backend="numba")  # fmt: skip
    assert f32.coef.dtype == np.float32
    assert np.max(np.abs(f32.coef - dense.coef)) < 1e-5


def _broken(kind: str):
    X, *_ = _problem()
    X = X.copy()
    if kind == "nan":
        X.data[3] = np.nan
    elif kind == "inf":
        X.data[5] = -np.inf
    elif kind == "negative":
        X.indices[2] = -1
    elif kind == "out_of_range":
        X.indices[2] = D
    return X


@pytest.mark.parametrize("kind", ["nan", "inf", "negative", "out_of_range"])
def test_bad_stored_values_and_indices_are_named(kind):
    X = _broken(kind)
    _, y, *_ = _problem()
    before = _arrays(X)
    with pytest.raises(ValueError, match="X"):
        fastgd.fit(X, y, backend="numba")
    _untouched(X, before)


def test_bad_shapes_sparse_targets_and_options_are_named():
    X, y, *_ = _problem()
    before = _arrays(X)
    with pytest.raises(TypeError, match="y must be a dense"):
        fastgd.fit(X, sp.csr_matrix(y[:, None]))
    with pytest.raises(TypeError, match="sample_weight must be a dense"):
        fastgd.fit(X, y, sample_weight=sp.csr_matrix(np.ones((1, N))))
    with pytest.raises(ValueError, match="y must have one entry per row"):
        fastgd.fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least one sample"):
        fastgd.fit(sp.csr_matrix((0, D)), y[:0])
    with pytest.raises(ValueError, match="at least one sample and one feature"):
        fastgd.fit(sp.csr_matrix((N, 0)), y)
    with pytest.raises(NotImplementedError, match="memory_budget"):
        fastgd.fit(X, y, memory_budget=1000)
    with pytest.raises(ValueError, match="intercept_decay"):
        fastgd.fit(X, y, intercept_decay=0.0)
    with pytest.raises(NotImplementedError, match="intercept_decay"):
        fastgd.fit(X.toarray(), y, intercept_decay=0.01, backend="numba")
    with pytest.raises(NotImplementedError, match="intercept_decay"):
        fastgd.fit(X.toarray(), y, intercept_decay=0.01, backend="jax")
    _untouched(X, before)
    empty = sp.csr_matrix((N, D))  # no stored value: a valid all-zero X
    result = fastgd.fit(empty, y, backend="numba", batch_size=1, epochs=1)
    assert np.all(result.coef == 0.0)


# ------------------------------------------------------------- sparse equals dense


def _cases(backend: str):
    """(loss, target name, optimizer, batch size, penalty, average, weighted): a grid
    that crosses every loss kind, optimizer, batch kind, K and weights without a full
    product (the compiled programs are the cost)."""
    cases = []
    targets = [("hinge", "y"), ("squared", "Y3"), ("multinomial", "codes"), ("logistic", "y")]
    optimizers = ["sgd", "momentum", "adam"]
    batches = [None, 7, 1]
    for t, (loss, target) in enumerate(targets):
        for o, optimizer in enumerate(optimizers):
            for b, batch in enumerate(batches):
                weighted = (t + o + b) % 2 == 0
                penalty, average = [(None, False), ("l2", 3), ("elasticnet", False)][(o + b) % 3]
                if backend == "jax" and (t + 2 * o + b) % 4:  # jax: a quarter of the grid
                    continue
                cases.append((loss, target, optimizer, batch, penalty, average, weighted))
    return cases


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_sparse_equals_dense(backend):
    X, y, Y3, codes, weight = _problem()
    targets = {"y": y, "Y3": Y3, "codes": codes}
    dense_X = X.toarray()
    worst = 0.0
    for loss, target, optimizer, batch, penalty, average, weighted in _cases(backend):
        kw = dict(loss=loss, optimizer=optimizer, batch_size=batch, epochs=2, penalty=penalty,
                  alpha=0.01, seed=0, lr=0.05, average=average,
                  sample_weight=weight if weighted else None)  # fmt: skip
        sparse_rule = batch == 1 and optimizer != "adam" and penalty == "elasticnet"
        if sparse_rule:  # the row's features only: equal to dense when every entry is stored
            full = sp.csr_matrix(
                (dense_X.ravel(), np.tile(np.arange(D), N), np.arange(0, N * D + 1, D)),
                shape=(N, D),
            )
            result = fastgd.fit(full, targets[target], backend=backend, **kw)
        else:
            result = fastgd.fit(X, targets[target], backend=backend, **kw)
        reference = fastgd.fit(dense_X, targets[target], backend="numpy", **kw)
        gap = _gap(result, reference)
        assert gap < 1e-12, (loss, optimizer, batch, penalty, average, weighted, gap)
        worst = max(worst, gap)


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_loss_grad_with_intercept_decay_on_sparse_equals_dense(backend):
    X, y, Y3, *_ = _problem()
    kernels = fastgd.get_backend(backend)
    from fastgd.specs import lower_model, resolve_loss

    model = lower_model(resolve_loss("squared"), 0.01, 0.001, True)._replace(intercept_decay=0.5)
    theta = np.random.default_rng(0).standard_normal((D + 1, 3))
    data, th = kernels.prepare(fastgd.sparse.check_sparse_X(X), Y3, theta, None)
    loss, grad = kernels.loss_grad(data, th, model)
    ref_data, ref_th = fastgd.get_backend("numpy").prepare(X.toarray(), Y3, theta, None)
    ref_loss, ref_grad = fastgd.get_backend("numpy").loss_grad(
        ref_data, ref_th, model._replace(intercept_decay=1.0)
    )
    ref_grad[-1] *= 0.5
    assert abs(float(loss) - ref_loss) < 1e-12
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=0, atol=1e-12)


# ------------------------------------------------------ scikit-learn's sparse rules


@pytest.mark.parametrize(
    ("penalty", "average"), [("l2", False), ("l2", True), ("elasticnet", False)]
)
def test_per_sample_numba_equals_sgdclassifier_on_csr(penalty, average):
    """scikit-learn's sparse rules: l1 truncated at the row's features, intercept steps
    times 0.01. (Averaging with l1 is left out: fastgd's average is exact, scikit-learn's
    lets later truncations leak into it, on dense X as on sparse.)"""
    from sklearn.linear_model import SGDClassifier

    X, y, *_ = _problem(3)
    alpha = 0.01
    peer = SGDClassifier(loss="hinge", penalty=penalty, alpha=alpha, max_iter=4, tol=None,
                         shuffle=False, learning_rate="optimal", average=average)  # fmt: skip
    peer.fit(X, y)
    ours = fastgd.fit(X, y, loss="hinge", penalty=penalty, alpha=alpha,
                      lr=optimal(alpha), batch_size=1, shuffle=False, epochs=4,
                      max_dloss=1e12, relative_weights=False, intercept_decay=0.01,
                      average=average, backend="numba")  # fmt: skip
    np.testing.assert_allclose(ours.coef, peer.coef_[0], rtol=0, atol=1e-10)
    assert abs(ours.intercept - peer.intercept_[0]) < 1e-10


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_intercept_decay_per_sample_and_in_batches_on_every_backend(backend):
    """Sparse with intercept_decay on each backend equals numpy's dense fit with it
    (per-sample SGD with l2 and averaging, and mini-batch Adam)."""
    X, y, Y3, *_ = _problem(5)
    for kw in (dict(batch_size=1, penalty="l2", alpha=0.01, average=2, lr=0.05),
               dict(batch_size=6, optimizer="momentum", lr=0.05)):  # fmt: skip
        for target in (y, Y3):
            ours = fastgd.fit(X, target, loss="hinge", epochs=2, seed=0, intercept_decay=0.01,
                              backend=backend, **kw)  # fmt: skip
            dense = fastgd.fit(X.toarray(), target, loss="hinge", epochs=2, seed=0,
                               intercept_decay=0.01, backend="numpy", **kw)  # fmt: skip
            plain = fastgd.fit(X.toarray(), target, loss="hinge", epochs=2, seed=0,
                               backend="numpy", **kw)  # fmt: skip
            assert _gap(ours, dense) < 1e-12
            assert np.max(np.abs(np.asarray(plain.intercept) - dense.intercept)) > 1e-3


@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_check_grad_on_sparse(backend):
    X, y, Y3, *_ = _problem(7)
    coef = np.random.default_rng(1).standard_normal((D, 3))
    error = fastgd.check_grad(X, Y3, coef, np.zeros(3), loss="squared", penalty="l2",
                              alpha=0.1, backend=backend)  # fmt: skip
    assert error < 1e-6


def test_numba_large_batch_gradient_in_blocks_equals_dense():
    """A batch large enough for the parallel row blocks and the blocked scatter."""
    from fastgd.backends.numba.sparse import _scatter_blocks
    from fastgd.specs import lower_model, resolve_loss

    X = sp.random(4000, 300, density=0.5, format="csr", random_state=2)
    assert _scatter_blocks(X.nnz, 300, 2) > 1
    Y = np.random.default_rng(3).standard_normal((4000, 2))
    theta = np.random.default_rng(4).standard_normal((301, 2))
    model = lower_model(resolve_loss("huber"), 0.01, 0.0, True)
    numba_kernels, numpy_kernels = fastgd.get_backend("numba"), fastgd.get_backend("numpy")
    loss, grad = numba_kernels.loss_grad(numba_kernels.prepare(X, Y, theta, None)[0], theta,
                                         model)  # fmt: skip
    ref_loss, ref_grad = numpy_kernels.loss_grad(
        numpy_kernels.prepare(X.toarray(), Y, theta, None)[0], theta, model
    )
    assert abs(loss - ref_loss) < 1e-12 * abs(ref_loss)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-12)
