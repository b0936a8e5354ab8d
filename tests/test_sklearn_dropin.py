"""The estimators on scikit-learn's own settings: its shuffle and its absolute weights.

The cases users hit and where conventions do not happen to agree: ``shuffle=True`` (its
default) with a ``random_state``, sample weights that do not average 1, multi-class with
class weights, ``partial_fit`` shuffled. Each compares ``coef_``, ``intercept_``,
``n_iter_`` and ``t_`` with scikit-learn's on real data sets it ships, every backend.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import rel_err
from test_estimators import assert_same_model, quietly, wine

import fastgd

pytest.importorskip("sklearn")
from sklearn.linear_model import SGDClassifier, SGDRegressor  # noqa: E402


def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), (y - y.mean()) / y.std()


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def weights_averaging(mean: float, n: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    return w * (mean / w.mean())


@pytest.mark.parametrize("random_state", [0, 7])
@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_binary_shuffled_equals_sgdclassifier(backend, loss, random_state):
    X, y = breast_cancer()
    params = dict(loss=loss, learning_rate="optimal", alpha=1e-3, tol=None, max_iter=6,
                  random_state=random_state)  # shuffle=True: both defaults
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer, rtol=1e-9)
    unshuffled = fastgd.GDClassifier(backend=backend, shuffle=False, **params).fit(X, y)
    assert rel_err(unshuffled.coef_, ours.coef_) > 1e-3  # the order does act


def test_one_vs_rest_shuffled_trains_each_class_in_its_own_order(backend):
    X, y = wine()
    params = dict(loss="hinge", learning_rate="constant", eta0=0.01, tol=None, max_iter=6,
                  random_state=3)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer)
    shared = fastgd.GDClassifier(backend=backend, ovr_order="shared", **params).fit(X, y)
    assert rel_err(shared.coef_, peer.coef_) > 1e-3  # another model: one order for all
    order = fastgd.SklearnShuffle(fastgd.sklearn_shuffle.binary_seed(3))
    for k in range(3):  # each class of the one-pass model is a binary fit in that order
        alone = fastgd.fit(X, (y == k).astype(float), loss="hinge", lr=0.01, batch_size=1,
                           epochs=6, penalty="l2", alpha=1e-4, seed=order,
                           max_dloss=1e12, backend=backend)  # fmt: skip
        assert rel_err(shared.coef_[k], alone.coef) <= 1e-10


@pytest.mark.parametrize("tol", [None, 1e-3], ids=["tol_off", "tol_on"])
def test_regressor_shuffled_equals_sgdregressor(backend, tol):
    X, y = diabetes()
    params = dict(penalty="l2", alpha=1e-3, eta0=0.005, tol=tol, max_iter=12, random_state=5)
    peer = quietly(SGDRegressor(**params), X, y)
    assert_same_model(fastgd.GDRegressor(backend=backend, **params).fit(X, y), peer)


@pytest.mark.parametrize("mean", [2.0, 0.3])
def test_sample_weights_not_averaging_one_are_absolute_as_scikit_learns(backend, mean):
    X, y = breast_cancer()
    w = weights_averaging(mean, len(y))
    params = dict(loss="hinge", learning_rate="invscaling", eta0=0.02, shuffle=False,
                  tol=None, max_iter=5)
    peer = quietly(SGDClassifier(**params), X, y, sample_weight=w)
    assert_same_model(fastgd.GDClassifier(backend=backend, **params).fit(X, y, sample_weight=w),
                      peer)  # fmt: skip
    X, y = diabetes()
    w = weights_averaging(mean, len(y), seed=1)
    params = dict(penalty="l2", eta0=0.005, shuffle=True, random_state=2, tol=None,
                  max_iter=5)
    peer = quietly(SGDRegressor(**params), X, y, sample_weight=w)
    assert_same_model(fastgd.GDRegressor(backend=backend, **params).fit(X, y, sample_weight=w),
                      peer)  # fmt: skip


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 2: 0.5}])
def test_multi_class_class_weight_and_sample_weight_shuffled(backend, class_weight):
    X, y = wine()
    w = weights_averaging(1.7, len(y))
    params = dict(loss="hinge", learning_rate="optimal", alpha=1e-3, tol=None, max_iter=5,
                  random_state=11, class_weight=class_weight)
    peer = quietly(SGDClassifier(**params), X, y, sample_weight=w)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y, sample_weight=w)
    assert_same_model(ours, peer, rtol=1e-9)


def test_partial_fit_shuffled_over_chunks_equals_scikit_learns(backend):
    X, y = wine()
    params = dict(loss="log_loss", learning_rate="invscaling", eta0=0.05, random_state=4)
    peer, ours = SGDClassifier(**params), fastgd.GDClassifier(backend=backend, **params)
    for rows in np.array_split(np.arange(len(y)), 3):
        peer.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
        ours.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
    assert_same_model(ours, peer)


def test_fit_weights_are_relative_by_default_and_absolute_on_request(backend):
    X, y = diabetes()
    w = weights_averaging(1.0, len(y))
    args = dict(lr=0.01, batch_size=1, epochs=3, shuffle=False, backend=backend)
    base = fastgd.fit(X, y, sample_weight=w, **args)
    doubled = fastgd.fit(X, y, sample_weight=2 * w, **args)
    assert rel_err(doubled.coef, base.coef) <= 1e-12  # relative: the scale does not count
    absolute = fastgd.fit(X, y, sample_weight=w, relative_weights=False, **args)
    assert rel_err(absolute.coef, base.coef) <= 1e-12  # these weights average 1
    twice = fastgd.fit(X, y, sample_weight=2 * w, relative_weights=False, **args)
    assert rel_err(twice.coef, base.coef) > 1e-3  # absolute: twice the steps
    unit = fastgd.fit(X, y, lr=0.02, batch_size=1, epochs=3, shuffle=False, backend=backend)
    with_two = fastgd.fit(X, y, sample_weight=np.full(len(y), 2.0), relative_weights=False,
                          **args)  # fmt: skip
    assert rel_err(with_two.coef, unit.coef) <= 1e-10  # weight 2 at lr is lr 2 (squared loss)


def test_bad_relative_weights_and_orders_are_named():
    X, y = diabetes()
    with pytest.raises(TypeError, match="relative_weights must be a bool"):
        fastgd.fit(X, y, relative_weights="no")
    with pytest.raises(ValueError, match="sample_weight must not be all zero"):
        fastgd.fit(X, y, sample_weight=np.zeros(len(y)), relative_weights=False)
    with pytest.raises(NotImplementedError, match="SklearnShuffle"):
        fastgd.fit(X, y, batch_size=8, seed=fastgd.SklearnShuffle(1), memory_budget=4096)
    with pytest.raises(ValueError, match="ovr_order must be"):
        fastgd.GDClassifier(ovr_order="sometimes").fit(*wine())


@pytest.mark.parametrize("shuffle", [False, True])
def test_perceptron_classifier_equals_scikit_learns(backend, shuffle):
    X, y = wine()
    params = dict(loss="perceptron", penalty=None, learning_rate="constant", eta0=1.0,
                  tol=None, max_iter=5, shuffle=shuffle, random_state=1)
    peer = quietly(SGDClassifier(**params), X, y)
    assert_same_model(fastgd.GDClassifier(backend=backend, **params).fit(X, y), peer)


@pytest.mark.parametrize("shuffle", [False, True])
def test_early_stopping_binary_and_one_vs_rest_equal_sgdclassifier(backend, shuffle):
    for X, y in (breast_cancer(), wine()):
        params = dict(loss="hinge", learning_rate="constant", eta0=0.01, max_iter=60,
                      early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                      tol=1e-4, shuffle=shuffle, random_state=0)
        peer = quietly(SGDClassifier(**params), X, y)
        ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
        assert 1 < peer.n_iter_ < 60  # it did stop early
        assert_same_model(ours, peer)


def test_early_stopping_regressor_with_weights_and_adaptive_rate(backend):
    X, y = diabetes()
    w = weights_averaging(1.5, len(y))
    params = dict(learning_rate="adaptive", eta0=0.05, max_iter=80, early_stopping=True,
                  n_iter_no_change=3, tol=1e-3, random_state=3)
    peer = quietly(SGDRegressor(**params), X, y, sample_weight=w)
    ours = fastgd.GDRegressor(backend=backend, **params).fit(X, y, sample_weight=w)
    assert 1 < peer.n_iter_ < 80
    assert_same_model(ours, peer)


def test_early_stopping_is_refused_by_partial_fit_as_by_scikit_learn():
    X, y = diabetes()
    with pytest.raises(ValueError, match="early_stopping should be False with partial_fit"):
        SGDRegressor(early_stopping=True).partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping should be False with partial_fit"):
        fastgd.GDRegressor(early_stopping=True).partial_fit(X, y)


@pytest.mark.parametrize(("params", "error", "fragment"), [
    (dict(validation_fraction=1.0), ValueError, "validation_fraction must be in (0, 1)"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be a bool"),
])
def test_bad_early_stopping_parameters_are_named(params, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        fastgd.GDRegressor(**{"early_stopping": True, **params}).fit(*diabetes())


def test_n_jobs_trains_the_classes_in_threads_to_the_same_model(backend):
    X, y = wine()
    params = dict(loss="log_loss", learning_rate="optimal", alpha=1e-3, max_iter=5, tol=None,
                  random_state=6)
    alone = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    threads = fastgd.GDClassifier(backend=backend, n_jobs=2, **params).fit(X, y)
    np.testing.assert_array_equal(threads.coef_, alone.coef_)
    np.testing.assert_array_equal(threads.intercept_, alone.intercept_)
    assert_same_model(threads, quietly(SGDClassifier(n_jobs=2, **params), X, y), rtol=1e-9)


def test_verbose_prints_scikit_learns_epoch_lines(backend, capsys):
    X, y = breast_cancer()
    params = dict(max_iter=3, random_state=0, verbose=1, tol=10.0, n_iter_no_change=2)
    quietly(SGDClassifier(**params), X, y)
    theirs = capsys.readouterr().out.splitlines()
    fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    ours = capsys.readouterr().out.splitlines()

    def comparable(line: str) -> str:  # the times differ; fastgd has no "Avg. loss"
        return ", ".join(part for part in line.split(", ") if not part.startswith("Avg. loss"))

    assert len(ours) == len(theirs) == 3 * 3 + 1  # three epochs, then the convergence line
    for mine, peer in zip(ours, theirs, strict=True):
        if "seconds" in peer:
            assert mine.split(" took ")[0].split(":")[0] == peer.split(" took ")[0].split(":")[0]
            continue
        prefix = comparable(peer).rsplit("Objective: ", 1)
        assert comparable(mine).startswith(prefix[0])
        if len(prefix) == 2:
            assert abs(float(mine.rsplit("Objective: ", 1)[1]) - float(prefix[1])) <= 1e-6


def test_partial_fit_with_elasticnet_starts_the_l1_record_afresh_as_scikit_learn(backend):
    X, y = wine()
    params = dict(loss="hinge", penalty="elasticnet", l1_ratio=0.9, alpha=0.05,
                  learning_rate="constant", eta0=0.01, random_state=4)
    peer, ours = SGDClassifier(**params), fastgd.GDClassifier(backend=backend, **params)
    for rows in np.array_split(np.arange(len(y)), 3):
        peer.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
        ours.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
    assert_same_model(ours, peer)
    assert (peer.coef_ == 0).sum() > 0 and np.array_equal(ours.coef_ == 0, peer.coef_ == 0)


@pytest.mark.parametrize("average, iters", [(10, (5, 5, 5)), (1500, (5, 2, 2))],
                         ids=["started", "carried"])  # fmt: skip
def test_regressor_warm_start_with_average_goes_on_as_scikit_learn(average, iters):
    """``warm_start`` refits with ``average``: scikit-learn's regressor goes on from its
    plain weights with ``t_`` at 1 and keeps its averaged weights, which its lazy average
    carries as ``carry / N`` on top of the new running mean; fastgd repeats that, and
    ``partial_fit`` after it. "carried": the second fit (884 samples) does not reach
    ``average``, so the carry waits for a later ``partial_fit`` that does."""
    X, y = diabetes()
    kw = dict(average=average, warm_start=True, tol=None, learning_rate="invscaling",
              eta0=0.01, random_state=0)  # fmt: skip
    theirs, ours = SGDRegressor(**kw), fastgd.GDRegressor(backend="numba", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        for max_iter in iters:
            theirs.set_params(max_iter=max_iter).fit(X, y)
            ours.set_params(max_iter=max_iter).fit(X, y)
            assert_same_model(ours, theirs, rtol=1e-10)
        for _ in range(2):
            theirs.partial_fit(X, y)
            ours.partial_fit(X, y)
            assert_same_model(ours, theirs, rtol=1e-10)
