"""The scikit-learn style estimators: same numbers as ``fit``, scikit-learn conventions."""

from __future__ import annotations

import numpy as np
import pytest

import fastgd


def test_regressor_matches_fit_and_scores(backend):
    X, y, _ = fastgd.make_regression(120, 3, noise=0.0, seed=4)
    kwargs = dict(optimizer="adam", lr=0.05, batch_size=16, epochs=40, seed=1)
    model = fastgd.GDRegressor(backend=backend, **kwargs).fit(X, y)
    direct = fastgd.fit(X, y, backend=backend, **kwargs)
    np.testing.assert_array_equal(model.coef_, direct.coef)
    assert model.intercept_ == direct.intercept
    assert model.n_iter_ == 40 and model.loss_history_.shape == (40,)
    np.testing.assert_array_equal(model.predict(X), direct.predict(X))
    assert model.score(X, y) > 0.99


def test_classifier_takes_any_two_labels():
    X, y01, _ = fastgd.make_classification(300, 3, seed=5)
    labels = np.where(y01 > 0, "spam", "ham")
    model = fastgd.GDClassifier(optimizer="adam", lr=0.1, epochs=100).fit(X, labels)
    direct = fastgd.fit(X, y01, loss="logistic", optimizer="adam", lr=0.1, epochs=100)
    assert model.classes_.tolist() == ["ham", "spam"]
    np.testing.assert_array_equal(model.coef_, direct.coef)
    proba = model.predict_proba(X)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], direct.predict_proba(X))
    expected = np.where(direct.predict(X) > 0, "spam", "ham")
    np.testing.assert_array_equal(model.predict(X), expected)
    assert model.score(X, labels) > 0.7


def test_params_round_trip_and_sklearn_clone():
    from sklearn.base import clone

    model = fastgd.GDRegressor(optimizer="momentum", epochs=7, penalty="l2")
    params = model.get_params()
    assert params["optimizer"] == "momentum" and params["epochs"] == 7
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    assert model.set_params(alpha=0.5) is model and model.alpha == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        model.set_params(learning_rate=0.1)


def test_estimator_errors():
    X, y, _ = fastgd.make_regression(20, 2, seed=6)
    with pytest.raises(RuntimeError, match="not fitted"):
        fastgd.GDRegressor().predict(X)
    with pytest.raises(ValueError, match="regression loss"):
        fastgd.GDRegressor(loss="logistic").fit(X, (y > 0).astype(float))
    with pytest.raises(ValueError, match="exactly two classes"):
        fastgd.GDClassifier().fit(X, np.arange(20) % 3)
    with pytest.raises(ValueError, match="'logistic'"):
        fastgd.GDClassifier(loss="huber").fit(X, (y > 0).astype(float))
