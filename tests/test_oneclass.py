"""The linear one-class SVM: ``GDOneClassSVM`` against scikit-learn's ``SGDOneClassSVM``
on every backend, and its objective (``OneClassHinge``: the hinge on labels +1 plus
``nu·b``) in ``fit`` against the reference and finite differences."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from helpers import as_rows, model_for, rel_err, sample_weights
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import SGDOneClassSVM
from sklearn.preprocessing import StandardScaler

import fastgd
from fastgd import GDOneClassSVM, OneClassHinge
from fastgd.specs import lower_optimizer


def _scaled(load):
    return StandardScaler().fit_transform(load(return_X_y=True)[0])


DATA = {"cancer": _scaled(load_breast_cancer), "wine": _scaled(load_wine)}


def _assert_same(ours, theirs, rtol=1e-10):
    """n_iter_ and t_ equal; coef_ and the intercept ``1 − offset_`` (what both train)
    to ``rtol``: an offset near 0 is a cancellation in both, so it is compared relative
    to the intercept."""
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert rel_err(ours.coef_, theirs.coef_) <= rtol
    assert rel_err(1.0 - ours.offset_, 1.0 - theirs.offset_) <= rtol


#: (data, learning_rate, eta0, shuffle, average, nu). With ``average`` and a constant
#: rate, eta0·nu is kept small: scikit-learn keeps its average lazily against a weight
#: scale that shrinks by 1 − eta0·nu per sample and is folded in below 1e-9; at
#: eta0·nu = 0.015 its averaged coef_ is 1.8e-8 away from the running mean fastgd's three
#: backends and the reference agree on (to 1e-15); at 0.0015, 8e-13.
CASES = [
    ("cancer", "optimal", 0.01, True, False, 0.5),
    ("cancer", "constant", 0.001, False, 5, 0.3),
    ("wine", "invscaling", 0.05, True, 7, 0.3),
    ("wine", "adaptive", 0.05, False, False, 0.2),
    ("wine", "optimal", 0.01, False, 20, 0.8),
]


@pytest.mark.parametrize("data, learning_rate, eta0, shuffle, average, nu", CASES)
def test_equals_sklearn(backend, data, learning_rate, eta0, shuffle, average, nu):
    X = DATA[data]
    kw = dict(nu=nu, learning_rate=learning_rate, eta0=eta0, shuffle=shuffle,
              average=average, random_state=3)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SGDOneClassSVM(**kw).fit(X)
        ours = GDOneClassSVM(backend=backend, **kw).fit(X)
    _assert_same(ours, theirs)
    assert ours.backend_ == backend
    Z = X[::3] * 1.5
    np.testing.assert_array_equal(ours.predict(Z), theirs.predict(Z))
    np.testing.assert_allclose(ours.decision_function(Z), theirs.decision_function(Z),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(ours.score_samples(Z), theirs.score_samples(Z),
                               rtol=1e-9, atol=1e-12)  # fmt: skip


def test_weights_and_init_equal_sklearn():
    """Absolute sample weights (tol=None: scikit-learn's tol sums the unweighted losses),
    a given start."""
    X = DATA["cancer"]
    weight = np.random.default_rng(0).uniform(0.5, 2.5, X.shape[0])
    for kw in (dict(tol=None, max_iter=6), dict(tol=None, max_iter=3, average=100)):
        kw = dict(kw, nu=0.4, random_state=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # scikit-learn trains in coef_init's own memory: each gets a fresh one
            theirs = SGDOneClassSVM(**kw).fit(X, sample_weight=weight, **_start(X))
            ours = GDOneClassSVM(backend="numba", **kw).fit(X, sample_weight=weight, **_start(X))
        _assert_same(ours, theirs)


def _start(X):
    return dict(coef_init=np.full(X.shape[1], 0.1), offset_init=np.array([0.4]))


@pytest.mark.parametrize("average", [False, 300])
def test_partial_fit_and_warm_start_equal_sklearn(average):
    X = DATA["cancer"]
    kw = dict(nu=0.3, learning_rate="invscaling", eta0=0.05, random_state=2, average=average)
    theirs, ours = SGDOneClassSVM(**kw), GDOneClassSVM(backend="numba", **kw)
    for chunk in np.array_split(np.arange(X.shape[0]), 3):
        theirs.partial_fit(X[chunk])
        ours.partial_fit(X[chunk])
        _assert_same(ours, theirs)
    kw = dict(kw, warm_start=True, max_iter=4, tol=None)
    theirs, ours = SGDOneClassSVM(**kw), GDOneClassSVM(backend="numba", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # the second fit starts from the first's coef_ and offset_
            theirs.fit(X)
            ours.fit(X)
            _assert_same(ours, theirs)


def test_bad_parameters_are_named():
    X = DATA["wine"]
    for nu in (0.0, 1.5, "a"):
        with pytest.raises(ValueError, match="nu"):
            GDOneClassSVM(nu=nu).fit(X)
    for rate in ("cosine", "pa1"):  # scikit-learn's one-class SVM refuses pa1/pa2 too
        with pytest.raises(ValueError, match="learning_rate"):
            GDOneClassSVM(learning_rate=rate).fit(X)
    with pytest.raises(ValueError, match="coef_init"):
        GDOneClassSVM().fit(X, coef_init=np.zeros(3))
    with pytest.raises(NotImplementedError, match="fit_intercept"):
        GDOneClassSVM(fit_intercept=False).fit(X)


# ------------------------------------------------- the objective in fit, every backend


@pytest.mark.parametrize("batch_size", [1, 8, None], ids=["sgd", "mini", "full"])
def test_fit_one_class_matches_reference(backend, dtype, batch_size):
    nu = 0.3
    rng = np.random.default_rng(4)
    X = rng.standard_normal((37, 5)).astype(dtype)
    y = np.ones(37, dtype=dtype)
    weight = sample_weights()
    optimizer = fastgd.SGD(lr=0.05)
    result = fastgd.fit(X, y, loss=OneClassHinge(nu), optimizer=optimizer, penalty="l2",
                        alpha=nu, batch_size=batch_size, epochs=3, seed=2, backend=backend,
                        intercept_init=1.0, sample_weight=weight, relative_weights=False,
                        average=5)  # fmt: skip
    model = model_for("hinge", "l2", alpha=nu)._replace(intercept_slope=nu)
    orders = ref.shuffled_orders(2, 37, 3, True)
    theta, losses = ref.train(as_rows(X), [1.0] * 37, [0.0] * 5 + [1.0], orders,
                              batch_size or 37, model, lower_optimizer(optimizer),
                              weight.tolist(), average=5)  # fmt: skip
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert rel_err(np.append(result.coef, result.intercept), theta) <= tol
    assert rel_err(result.loss_history, losses) <= tol


def test_one_class_gradient_by_finite_differences(backend):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 4))
    coef = rng.standard_normal(4) * 0.3
    err = fastgd.check_grad(X, np.ones(30), coef, 0.7, loss=OneClassHinge(0.4), penalty="l2",
                            alpha=0.4, backend=backend)  # fmt: skip
    assert err <= 1e-6


@pytest.mark.parametrize("batch_size", [1, 8], ids=["sgd", "mini"])
def test_fit_one_class_two_outputs_matches_reference(backend, batch_size):
    """K = 2 outputs of the one-class objective (each its own intercept slope), per
    sample and in mini-batches, without weights."""
    nu = 0.4
    X = np.random.default_rng(6).standard_normal((37, 5))
    Y = np.ones((37, 2))
    optimizer = fastgd.SGD(lr=0.05)
    result = fastgd.fit(X, Y, loss=OneClassHinge(nu), optimizer=optimizer, penalty="l2",
                        alpha=nu, batch_size=batch_size, epochs=3, seed=2, backend=backend,
                        intercept_init=[1.0, 0.5])  # fmt: skip
    model = model_for("hinge", "l2", alpha=nu)._replace(intercept_slope=nu)
    theta0 = [[0.0, 0.0] for _ in range(5)] + [[1.0, 0.5]]
    theta, losses = ref.train(as_rows(X), Y.tolist(), theta0, ref.shuffled_orders(2, 37, 3, True),
                              batch_size, model, lower_optimizer(optimizer))  # fmt: skip
    actual = np.vstack([result.coef, np.reshape(result.intercept, (1, -1))])
    assert rel_err(actual, np.asarray(theta)) <= 1e-12
    assert rel_err(result.loss_history, losses) <= 1e-12
