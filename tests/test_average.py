"""Averaged SGD: ``fit(average=...)`` on every backend against the reference, and the
estimators' ``average`` against scikit-learn's ``SGDClassifier``/``SGDRegressor``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from helpers import as_list, as_rows, model_for, problem, rel_err, theta_of
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

import fastgd
from fastgd.estimators import GDClassifier, GDRegressor
from fastgd.specs import lower_optimizer, optimal

# ------------------------------------------------------------- fit(average=...)


def _reference(X, y, loss, optimizer, batch_size, epochs, seed, average, penalty=None,
               n_outputs=None):
    """``ref.train`` with averaging, on the orders ``fit`` draws from ``seed``."""
    n, d = X.shape
    orders = ref.shuffled_orders(seed, n, epochs, True)
    K = 1 if n_outputs is None else n_outputs
    theta0 = [0.0] * (d + 1) if n_outputs is None else [[0.0] * K for _ in range(d + 1)]
    Y = as_list(y) if n_outputs is None else np.asarray(y, dtype=np.float64).tolist()
    theta, _ = ref.train(as_rows(X), Y, theta0, orders, batch_size or n,
                         model_for(loss, penalty), lower_optimizer(optimizer), average=average)
    return np.ravel(np.asarray(theta, dtype=np.float64))


CASES = {  # name: (optimizer, batch_size, penalty)
    "sgd": (fastgd.SGD(lr=0.05), 1, "l2"),
    "sgd-l1": (fastgd.SGD(lr=0.05), 1, "elasticnet"),
    "momentum": (fastgd.SGD(lr=0.03, momentum=0.8), 1, None),
    "plain": (fastgd.SGD(lr=0.05), 1, None),
    "mini-prox": (fastgd.SGD(lr=0.05), 8, "elasticnet"),
    "adam": (fastgd.Adam(lr=0.05), 8, "l2"),
    "full": (fastgd.SGD(lr=0.1), None, "l2"),
}


@pytest.mark.parametrize("n_outputs", [None, 3], ids=["K1", "K3"])
@pytest.mark.parametrize("average", [True, 20, 10**6])
@pytest.mark.parametrize("case", CASES)
def test_fit_average_matches_reference(backend, dtype, case, average, n_outputs):
    optimizer, batch_size, penalty = CASES[case]
    X, y = problem("squared", dtype, n_outputs=n_outputs)
    result = fastgd.fit(X, y, optimizer=optimizer, batch_size=batch_size, epochs=3, seed=2,
                        penalty=penalty, alpha=0.05, l1_ratio=0.4, backend=backend,
                        average=average)  # fmt: skip
    expected = _reference(X, y, "squared", optimizer, batch_size, 3, 2, int(average), penalty,
                          n_outputs)  # fmt: skip
    assert rel_err(theta_of(result), expected) <= (2e-5 if dtype == np.float32 else 1e-12)
    plain = fastgd.fit(X, y, optimizer=optimizer, batch_size=batch_size, epochs=3, seed=2,
                       penalty=penalty, alpha=0.05, l1_ratio=0.4, backend=backend)
    started = result.n_updates >= int(average)
    # averaging reports another point once it has started; the plain one stays in the state
    assert (rel_err(theta_of(result), theta_of(plain)) > 1e-3) == started
    if started:
        kept = np.asarray(result.optimizer_state[1])[2]
        assert rel_err(kept.ravel(), np.append(plain.coef, plain.intercept)
                       if n_outputs is None else np.vstack([plain.coef, plain.intercept]).ravel()
                       ) <= (1e-6 if dtype == np.float32 else 1e-13)  # fmt: skip


@pytest.mark.parametrize("average", [1, 50, 100])
@pytest.mark.parametrize("case", ["sgd", "sgd-l1", "adam"])
def test_resumed_in_chunks_equals_one_call(backend, case, average):
    """Two calls of 2 epochs, resumed through coef/intercept and the state, are one call
    of 4 (37 samples an epoch: averaging starts before, within or after the first)."""
    optimizer, batch_size, penalty = CASES[case]
    X, y = problem("squared")
    kw = dict(optimizer=optimizer, batch_size=batch_size, penalty=penalty, alpha=0.05,
              l1_ratio=0.4, backend=backend, shuffle=False, average=average)
    whole = fastgd.fit(X, y, epochs=4, **kw)
    first = fastgd.fit(X, y, epochs=2, **kw)
    second = fastgd.fit(X, y, epochs=2, coef_init=first.coef, intercept_init=first.intercept,
                        optimizer_state=first.optimizer_state, **kw)
    assert rel_err(theta_of(second), theta_of(whole)) <= 1e-13
    np.testing.assert_allclose(second.optimizer_state[1], whole.optimizer_state[1],
                               rtol=1e-12, atol=1e-15)


def test_backends_agree_per_sample(dtype):
    X, y = problem("hinge", dtype, n=200)
    results = [
        theta_of(fastgd.fit(X, y, loss="hinge", batch_size=1, epochs=3, seed=1, penalty="l2",
                            alpha=1e-3, lr=optimal(1e-3), backend=b, average=30))
        for b in fastgd.available_backends()
    ]
    for other in results[1:]:
        assert rel_err(other, results[0]) <= (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "yes", None])
def test_bad_average_is_named(bad):
    X, y = problem("squared")
    with pytest.raises(ValueError, match="average"):
        fastgd.fit(X, y, epochs=1, average=bad)
    with pytest.raises(ValueError, match="average"):
        GDRegressor(average=bad).fit(X, y)


# --------------------------------------------------------- against scikit-learn


def _scaled(load):
    X, y = load(return_X_y=True)
    return StandardScaler().fit_transform(X), y


BREAST, WINE, DIABETES = _scaled(load_breast_cancer), _scaled(load_wine), _scaled(load_diabetes)
DIABETES = (DIABETES[0], (DIABETES[1] - DIABETES[1].mean()) / DIABETES[1].std())
DATA = {  # name: (X, y, scikit-learn's class, fastgd's class)
    "breast_cancer": (*BREAST, SGDClassifier, GDClassifier),
    "wine-ovr": (*WINE, SGDClassifier, GDClassifier),
    "diabetes": (*DIABETES, SGDRegressor, GDRegressor),
}


def _assert_same(ours, theirs, rtol=1e-10):
    assert rel_err(ours.coef_, theirs.coef_) <= rtol
    assert rel_err(ours.intercept_, theirs.intercept_) <= rtol
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_


def _pair(name, **params):
    X, y, theirs, ours = DATA[name]
    params = dict(params, random_state=0)
    if theirs is SGDRegressor and params.get("learning_rate") == "optimal":
        params["learning_rate"] = "invscaling"
    return X, y, theirs(**params), ours(backend="numba", **params)


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in_order"])
@pytest.mark.parametrize("learning_rate", ["constant", "optimal", "invscaling"])
@pytest.mark.parametrize("average", [True, 10, 10**6])
@pytest.mark.parametrize("name", DATA)
def test_estimators_equal_scikit_learn(name, average, learning_rate, shuffle):
    X, y, theirs, ours = _pair(name, average=average, learning_rate=learning_rate,
                               shuffle=shuffle, eta0=0.01, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _assert_same(ours.fit(X, y), theirs.fit(X, y))


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
def test_other_backends_equal_scikit_learn(name, backend):
    X, y, theirs, _ = _pair(name, average=10, learning_rate="invscaling", eta0=0.01,
                            max_iter=20)
    ours = DATA[name][3](backend=backend, **theirs.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _assert_same(ours.fit(X, y), theirs.fit(X, y))


@pytest.mark.parametrize("name", DATA)
def test_elasticnet_before_averaging_starts(name):
    """With l1 in the step, scikit-learn's average also takes in each step's truncation
    (its averaging trick does not see it: see README); the plain weights, reported while
    averaging has not started, are equal."""
    X, y, theirs, ours = _pair(name, average=10**6, penalty="elasticnet", max_iter=20,
                               learning_rate="invscaling", eta0=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _assert_same(ours.fit(X, y), theirs.fit(X, y))


@pytest.mark.parametrize("average", [True, 10])
@pytest.mark.parametrize("name", DATA)
def test_sample_weights_equal_scikit_learn(name, average):
    # tol=None: with sample weights scikit-learn's tol watches the unweighted loss
    X, y, theirs, ours = _pair(name, average=average, learning_rate="invscaling", eta0=0.01,
                               max_iter=20, tol=None)
    weight = np.random.default_rng(0).uniform(0.5, 3.0, X.shape[0])  # mean about 1.75
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _assert_same(ours.fit(X, y, sample_weight=weight), theirs.fit(X, y, sample_weight=weight))


@pytest.mark.parametrize("average", [True, 10, 300])
@pytest.mark.parametrize("name", DATA)
def test_partial_fit_continues_the_average(name, average):
    """Three chunks of 100 rows, twice over (600 samples): averaging starts in the first
    call, or at the third call's last sample (300). scikit-learn's classifiers then resume
    from stale plain intercepts (its bookkeeping, emulated by the estimators)."""
    X, y, theirs, ours = _pair(name, average=average, learning_rate="invscaling", eta0=0.01)
    classes = np.unique(y) if theirs.__class__ is SGDClassifier else None
    extra = {} if classes is None else {"classes": classes}
    for _ in range(2):
        for start in range(0, min(X.shape[0], 300), 100):
            chunk = slice(start, start + 100)
            theirs.partial_fit(X[chunk], y[chunk], **extra)
            ours.partial_fit(X[chunk], y[chunk], **extra)
            _assert_same(ours, theirs)


@pytest.mark.parametrize("name", ["breast_cancer", "wine-ovr"])
def test_warm_start_starts_a_fresh_average(name):
    X, y, theirs, ours = _pair(name, average=10, warm_start=True, max_iter=5, tol=None,
                               learning_rate="invscaling", eta0=0.01)
    for _ in range(2):
        theirs.fit(X, y)
        ours.fit(X, y)
        _assert_same(ours, theirs)
