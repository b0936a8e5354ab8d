"""Passive-aggressive learning rates (scikit-learn's ``learning_rate="pa1"``/``"pa2"``):
``fit(lr=PassiveAggressive(C, kind))`` on every backend against the reference, the
estimators against ``SGDClassifier``/``SGDRegressor``, and the refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from helpers import as_rows, kernel_data, model_for, problem, rel_err, sample_weights
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

import fastgd
from fastgd.estimators import GDClassifier, GDRegressor
from fastgd.specs import PassiveAggressive, lower_optimizer

# ---------------------------------------------------------- fit(lr=PassiveAggressive)

#: name: (loss, K, penalty, weighted, average)
CASES = {
    "hinge-l2": ("hinge", None, "l2", False, 0),
    "hinge-K3-elasticnet-weights-avg": ("hinge", 3, "elasticnet", True, 20),
    "eps-weights-avg": ("epsilon_insensitive", None, None, True, 1),
}


def _run(backend, dtype, case, kind, C=0.3, epochs=3):
    loss, K, penalty, weighted, average = CASES[case]
    X, y = problem(loss, dtype, n_outputs=K)
    X[4] = 0.0  # a row of zeros: pa1 takes no loss step on it
    weight = sample_weights() if weighted else None
    optimizer = fastgd.SGD(lr=PassiveAggressive(C, kind))
    result = fastgd.fit(X, y, loss=loss, optimizer=optimizer, batch_size=1, epochs=epochs,
                        seed=2, penalty=penalty, alpha=0.05, l1_ratio=0.4, backend=backend,
                        sample_weight=weight, relative_weights=False,
                        average=average or False)  # fmt: skip
    Y, _ = kernel_data(loss, X, y)
    Y = Y[:, 0].tolist() if K is None else Y.tolist()
    d = X.shape[1]
    theta0 = [0.0] * (d + 1) if K is None else [[0.0] * K for _ in range(d + 1)]
    orders = ref.shuffled_orders(2, X.shape[0], epochs, True)
    theta, losses = ref.train(as_rows(X), Y, theta0, orders, 1,
                              model_for(loss, penalty, alpha=0.05, l1_ratio=0.4),
                              lower_optimizer(optimizer), None if weight is None else
                              weight.tolist(), average=average)  # fmt: skip
    actual = np.vstack([np.reshape(result.coef, (d, -1)), np.reshape(result.intercept, (1, -1))])
    return actual.ravel(), np.ravel(np.asarray(theta, dtype=np.float64)), result, losses


@pytest.mark.parametrize("kind", ["pa1", "pa2"])
@pytest.mark.parametrize("case", CASES)
def test_fit_pa_matches_reference(backend, case, kind):
    actual, expected, result, losses = _run(backend, np.float64, case, kind)
    assert rel_err(actual, expected) <= 1e-12
    # the epoch objective is the mean unweighted loss alone (no penalty), as scikit-learn's
    assert rel_err(result.loss_history, losses) <= 1e-12


def test_fit_pa_float32(backend):
    # one output: the numba kernel test_oneclass's float32 runs compile too
    actual, expected, _, _ = _run(backend, np.float32, "hinge-l2", "pa1")
    assert rel_err(actual, expected) <= 2e-5


def test_reference_pa_step_by_hand():
    """The oracle's step on numbers worked out by hand: x = (1, 2), y = +1, w = 0, C = 0.1:
    the hinge loss is 1, ‖x‖² = 5; pa1: tau = min(0.1, 1/5) = 0.1; pa2 (weight 2):
    tau = 1/(5 + 1/0.2) = 0.1, times the weight."""
    opt1 = (0, (0.0,) * 4, fastgd.specs.SCHED_PA1, (0.1, 0.0, 0.0))
    opt2 = (0, (0.0,) * 4, fastgd.specs.SCHED_PA2, (0.1, 0.0, 0.0))
    model = model_for("hinge")
    _, M, _ = ref.pa_step([1.0, 2.0], 1.0, [0.0, 0.0, 0.0], model, opt1, 1.0)
    assert M == [[0.1], [0.2], [0.1]]
    _, M, _ = ref.pa_step([1.0, 2.0], 1.0, [0.0, 0.0, 0.0], model, opt2, 2.0)
    np.testing.assert_allclose(M, [[0.2], [0.4], [0.2]], rtol=1e-15)  # 2 · 1/(5 + 5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(batch_size=2), "batch_size"),
    (dict(batch_size=None), "batch_size"),
    (dict(loss="squared"), "loss"),
    (dict(optimizer=fastgd.SGD(lr=PassiveAggressive(0.1), momentum=0.5)), "optimizer"),
    (dict(optimizer=fastgd.Adam(lr=PassiveAggressive(0.1))), "optimizer"),
])  # fmt: skip
def test_fit_pa_refusals(kwargs, name):
    X, y = problem("hinge")
    args = {"loss": "hinge", "optimizer": fastgd.SGD(lr=PassiveAggressive(0.1)),
            "batch_size": 1, **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=name):
        fastgd.fit(X, y, **args)
    with pytest.raises(ValueError, match="kind"):
        PassiveAggressive(0.1, "pa3")
    with pytest.raises(ValueError, match="C"):
        PassiveAggressive(0.0)


# ------------------------------------------------- the estimators against scikit-learn


def _data(name):
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()
    X, y = (load_wine if name == "wine" else load_breast_cancer)(return_X_y=True)
    return StandardScaler().fit_transform(X), y


#: (data, lr, shuffle, average, eta0, max_iter, weighted). Weighted cases: the weights
#: average about 1.5 (absolute multipliers of the step, as scikit-learn's; its tol rule,
#: and fastgd's with pa, watch the unweighted losses).
SKLEARN_CASES = [
    ("cancer", "pa1", False, False, 0.1, 20, True),
    ("cancer", "pa2", True, 7, 0.05, 20, True),
    ("wine", "pa1", True, False, 0.1, 20, True),
    ("wine", "pa2", False, 50, 1.0, 20, True),
    ("diabetes", "pa1", True, 10, 0.01, 10, True),
    ("diabetes", "pa2", False, False, 0.1, 20, False),
]


@pytest.mark.parametrize("data, lr, shuffle, average, eta0, max_iter, weighted", SKLEARN_CASES)
def test_estimators_pa_equal_sklearn(backend, data, lr, shuffle, average, eta0, max_iter,
                                     weighted):  # fmt: skip
    X, y = _data(data)
    kw = dict(learning_rate=lr, eta0=eta0, shuffle=shuffle, average=average,
              max_iter=max_iter, random_state=4)  # fmt: skip
    weight = np.random.default_rng(0).uniform(0.5, 2.5, X.shape[0]) if weighted else None
    if data == "diabetes":
        kw["loss"] = "epsilon_insensitive"
        pair = SGDRegressor(**kw), GDRegressor(backend=backend, **kw)
    else:
        pair = SGDClassifier(**kw), GDClassifier(backend=backend, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, ours = (est.fit(X, y, sample_weight=weight) for est in pair)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert rel_err(ours.coef_, theirs.coef_) <= 1e-10
    assert rel_err(ours.intercept_, theirs.intercept_) <= 1e-10


@pytest.mark.parametrize("data, extra", [
    ("wine", dict(class_weight="balanced")),
    ("cancer", dict(early_stopping=True)),
    ("cancer", dict(penalty="elasticnet", l1_ratio=0.3, alpha=1e-3)),
    ("diabetes", dict(early_stopping=True, loss="epsilon_insensitive")),
])  # fmt: skip
def test_estimators_pa_options_equal_sklearn(data, extra):
    """Class weights (the tol rule watches the unweighted losses, as scikit-learn's),
    early stopping, elastic net."""
    X, y = _data(data)
    kw = dict(learning_rate="pa1", eta0=0.1, random_state=2, **extra)
    if data == "diabetes":
        pair = SGDRegressor(**kw), GDRegressor(backend="numba", **kw)
    else:
        pair = SGDClassifier(**kw), GDClassifier(backend="numba", **kw)
    theirs, ours = (est.fit(X, y) for est in pair)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert rel_err(ours.coef_, theirs.coef_) <= 1e-10
    assert rel_err(ours.intercept_, theirs.intercept_) <= 1e-10


def test_estimator_pa_partial_fit_equals_sklearn():
    X, y = _data("cancer")
    kw = dict(learning_rate="pa1", eta0=0.2, shuffle=True, random_state=1, average=300)
    theirs, ours = SGDClassifier(**kw), GDClassifier(backend="numba", **kw)
    for chunk in np.array_split(np.arange(X.shape[0]), 3):
        theirs.partial_fit(X[chunk], y[chunk], classes=[0, 1])
        ours.partial_fit(X[chunk], y[chunk], classes=[0, 1])
    assert ours.t_ == theirs.t_
    assert rel_err(ours.coef_, theirs.coef_) <= 1e-10
    assert rel_err(ours.intercept_, theirs.intercept_) <= 1e-10


def test_estimator_pa_refusals():
    X, y = _data("cancer")
    with pytest.raises(ValueError, match="loss='hinge'"):
        GDClassifier(learning_rate="pa1", loss="log_loss").fit(X, y)
    with pytest.raises(ValueError, match="loss='epsilon_insensitive'"):
        GDRegressor(learning_rate="pa2").fit(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        GDClassifier(learning_rate="pa1", batch_size=8).fit(X, y)
