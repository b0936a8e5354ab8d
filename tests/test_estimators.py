"""GDRegressor and GDClassifier as drop-in replacements for scikit-learn's SGD estimators."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from helpers import BACKENDS, rel_err

import fastgd

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import SGDClassifier, SGDRegressor  # noqa: E402


def wine():
    """A real 3-class data set shipped with scikit-learn, standardised."""
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def quietly(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
        return estimator.fit(*args, **kwargs)


def assert_same_model(ours, peer, rtol=1e-10):
    assert ours.coef_.shape == peer.coef_.shape
    assert ours.intercept_.shape == peer.intercept_.shape
    assert rel_err(ours.coef_, peer.coef_) <= rtol
    assert rel_err(ours.intercept_, peer.intercept_) <= rtol
    assert ours.n_iter_ == peer.n_iter_
    assert ours.t_ == peer.t_


#: ``optimal`` with the squared losses: see test_blow_ups_stay_finite_as_scikit_learns.
CLASSIFIER_CASES = [
    (loss, penalty, schedule)
    for loss in ("hinge", "log_loss", "modified_huber", "squared_hinge")
    for penalty in (None, "l2")
    for schedule in ("constant", "invscaling", "optimal")
    if not (schedule == "optimal" and loss in ("modified_huber", "squared_hinge"))
]


@pytest.mark.parametrize("loss", ["modified_huber", "squared_hinge"])
def test_blow_ups_stay_finite_as_scikit_learns(backend, loss):
    """``optimal`` starts at steps of alpha^(-1/4): the squared losses blow up to weights
    of 1e13 in both libraries, held finite by the same clip of the loss derivative at
    1e12. Such steps amplify every rounding difference (measured 1e-11 to 1e-6 relative),
    so the comparison is looser here."""
    X, y = wine()
    params = dict(loss=loss, penalty="l2", learning_rate="optimal", alpha=1e-3,
                  shuffle=False, tol=None, max_iter=15)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert np.isfinite(ours.coef_).all()
    assert rel_err(ours.coef_, peer.coef_) <= 1e-4


@pytest.mark.parametrize("tol", [None, 1e-3], ids=["tol_off", "tol_on"])
@pytest.mark.parametrize(("loss", "penalty", "schedule"), CLASSIFIER_CASES)
def test_classifier_equals_sgdclassifier_on_wine(backend, loss, penalty, schedule, tol):
    X, y = wine()
    params = dict(loss=loss, penalty=penalty, learning_rate=schedule, eta0=0.01, alpha=1e-3,
                  shuffle=False, tol=tol, max_iter=15)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer, rtol=1e-9 if schedule == "optimal" else 1e-10)
    np.testing.assert_array_equal(ours.predict(X), peer.predict(X))


@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_binary_classifier_with_balanced_class_weight_and_sample_weight(backend, loss):
    """Balanced class weights average 1 over the samples, and so do these sample weights:
    there fastgd's relative weights and scikit-learn's absolute ones are the same."""
    X, y = wine()
    keep = y < 2
    X, y = X[keep], np.where(y[keep] == 1, "b", "a")
    cw = dict(zip(*np.unique(y, return_counts=True), strict=True))
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(y))
    w *= len(y) / np.sum(w * np.array([len(y) / (2 * cw[c]) for c in y]))  # mean 1 overall
    params = dict(loss=loss, learning_rate="invscaling", eta0=0.05, shuffle=False, tol=None,
                  max_iter=8, class_weight="balanced")
    peer = quietly(SGDClassifier(**params), X, y, sample_weight=w)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y, sample_weight=w)
    assert ours.classes_.tolist() == ["a", "b"]
    assert_same_model(ours, peer)


def test_one_vs_rest_class_weight_trains_each_class_as_scikit_learn_does(backend):
    """With class weights each class's problem has its own weights; a dict whose positive
    weights average 1 with the rest keeps scikit-learn's absolute weights equal to ours."""
    X, y = wine()
    params = dict(loss="hinge", learning_rate="constant", eta0=0.01, shuffle=False,
                  tol=None, max_iter=6, class_weight={0: 1.0, 1: 1.0, 2: 1.0})
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer)
    heavier = fastgd.GDClassifier(backend=backend, **{**params, "class_weight": {2: 5.0}})
    assert rel_err(heavier.fit(X, y).coef_, ours.coef_) > 1e-3  # the weights do act


@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive",
                                  "squared_epsilon_insensitive"])
@pytest.mark.parametrize("tol", [None, 1e-3], ids=["tol_off", "tol_on"])
def test_regressor_equals_sgdregressor(backend, loss, tol):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X, y = (X - X.mean(axis=0)) / X.std(axis=0), (y - y.mean()) / y.std()
    params = dict(loss=loss, penalty="l2", alpha=1e-3, learning_rate="invscaling",
                  eta0=0.005, shuffle=False, tol=tol, max_iter=12, epsilon=0.2)
    peer = quietly(SGDRegressor(**params), X, y)
    ours = fastgd.GDRegressor(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer)


def test_partial_fit_over_chunks_equals_scikit_learns(backend):
    X, y = wine()
    params = dict(loss="log_loss", learning_rate="invscaling", eta0=0.05, shuffle=False,
                  alpha=1e-3)
    peer, ours = SGDClassifier(**params), fastgd.GDClassifier(backend=backend, **params)
    classes = np.unique(y)
    for rows in np.array_split(np.arange(len(y)), 4):
        peer.partial_fit(X[rows], y[rows], classes=classes)
        ours.partial_fit(X[rows], y[rows], classes=classes)
        assert rel_err(ours.coef_, peer.coef_) <= 1e-10
        assert ours.t_ == peer.t_
    assert_same_model(ours, peer)


def test_adam_partial_fit_over_chunks_equals_one_epoch_of_fit(backend):
    """k calls of partial_fit on consecutive chunks continue the moments, the step count
    and the schedule exactly: one epoch of fit without shuffling. Chunks of 28 rows cut
    the 178 rows into the same batches of 7 as one pass does (25 of 7, then 3)."""
    X, y = wine()
    params = dict(loss="hinge", optimizer="adam", learning_rate="invscaling", eta0=0.05,
                  shuffle=False, tol=None, batch_size=7)
    chunked = fastgd.GDClassifier(backend=backend, **params)
    for start in range(0, len(y), 28):
        chunked.partial_fit(X[start : start + 28], y[start : start + 28], classes=np.unique(y))
    whole = fastgd.GDClassifier(backend=backend, max_iter=1, **params).fit(X, y)
    assert whole.t_ == 27.0  # 26 updates
    assert_same_model(chunked, whole, rtol=1e-12)


def test_warm_start_and_coef_init(backend):
    X, y = wine()
    params = dict(learning_rate="constant", eta0=0.01, shuffle=False, tol=None, max_iter=3)
    six = fastgd.GDClassifier(backend=backend, **{**params, "max_iter": 6}).fit(X, y)
    warm = fastgd.GDClassifier(backend=backend, warm_start=True, **params).fit(X, y).fit(X, y)
    # the second fit starts from the first one's coefficients (not its schedule: constant)
    assert rel_err(warm.coef_, six.coef_) <= 1e-12
    again = fastgd.GDClassifier(backend=backend, **params).fit(
        X, y, coef_init=warm.coef_, intercept_init=warm.intercept_
    )
    assert rel_err(again.coef_, six.coef_) > 0  # three more epochs from there
    assert again.coef_.shape == (3, X.shape[1])


def test_multinomial_classifier_probabilities():
    X, y = wine()
    model = fastgd.GDClassifier(loss="multinomial", learning_rate="constant", eta0=0.05,
                                batch_size=None, max_iter=300, tol=None).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(proba, axis=1)])
    assert model.score(X, y) > 0.95
    binary = fastgd.GDClassifier(loss="multinomial", max_iter=5).fit(X[y < 2], y[y < 2])
    assert binary.coef_.shape == (1, X.shape[1])  # one score, as a binary classifier
    p = binary.predict_proba(X[:5])
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-binary.decision_function(X[:5]))))


@pytest.mark.parametrize("loss", ["log_loss", "modified_huber"])
def test_probabilities_match_scikit_learns_formulas(loss):
    X, y = wine()
    params = dict(loss=loss, learning_rate="constant", eta0=0.01, shuffle=False, tol=None,
                  max_iter=5)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(**params).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), peer.predict_proba(X), rtol=1e-9,
                               atol=1e-12)
    assert not hasattr(fastgd.GDClassifier(loss="hinge"), "predict_proba")


@pytest.mark.parametrize("name", BACKENDS)
def test_fitted_estimators_pickle_and_clone(name):
    X, y = wine()
    model = fastgd.GDClassifier(backend=name, max_iter=3, tol=None).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert type(restored.coef_) is np.ndarray
    restored.partial_fit(X, y)  # the optimizer state came along
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coef_")


def test_pipeline_in_grid_search(backend):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = wine()
    pipe = make_pipeline(StandardScaler(), fastgd.GDClassifier(backend=backend, max_iter=20))
    search = GridSearchCV(pipe, {"gdclassifier__alpha": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.9


@pytest.mark.parametrize(
    ("params", "error", "fragment"),
    [
        (dict(average=0), ValueError, "average"),
        (dict(loss="ridge"), ValueError, "ridge"),
        (dict(learning_rate="pa3"), ValueError, "learning_rate"),
        (dict(penalty="l3"), ValueError, "penalty"),
        (dict(alpha=-1.0), ValueError, "alpha"),
        (dict(backend="torch"), ValueError, "backend"),
    ],
)
def test_bad_parameters_are_named(params, error, fragment):
    X, y = wine()
    with pytest.raises(error, match=fragment):
        fastgd.GDClassifier(**params).fit(X, y)


def test_partial_fit_needs_classes_first_and_balanced_is_refused():
    X, y = wine()
    with pytest.raises(ValueError, match="classes"):
        fastgd.GDClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="balanced"):
        fastgd.GDClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in classes_"):
        fastgd.GDClassifier().partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("classes", [2, 3])
def test_float32_x_gives_float32_parameters(classes, shuffle):
    """Every path (one pass, or the classes trained apart when shuffled or with tol) keeps
    X's float32 in coef_ and intercept_ (a one-output fit's intercept was a Python float
    that promoted them to float64)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    y = np.arange(60) % classes
    clf = quietly(fastgd.GDClassifier(max_iter=3, shuffle=shuffle, random_state=0), X, y)
    reg = quietly(fastgd.GDRegressor(max_iter=3, shuffle=shuffle, random_state=0), X, X[:, 0])
    for model in (clf, reg):
        assert model.coef_.dtype == np.float32 and model.intercept_.dtype == np.float32
