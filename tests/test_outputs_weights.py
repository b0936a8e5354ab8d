"""K outputs and sample weights: what they must mean, on every backend.

- K outputs in one pass are K independent models: each column equals its own fit;
- weights are relative: rescaled to mean 1, so unit weights are no weights (exactly), a
  common factor changes nothing, and with a full batch integer weights are repeated rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ALPHA, EPOCHS, MINI, OPTIMIZERS, problem, rel_err, sample_weights

import fastgd

SEED = 13
F64_RTOL = 1e-10


def fit(X, y, backend, **kwargs):
    defaults = dict(optimizer=OPTIMIZERS["adam"], epochs=EPOCHS, penalty="elasticnet",
                    alpha=ALPHA, seed=SEED, backend=backend)
    return fastgd.fit(X, y, **{**defaults, **kwargs})


@pytest.mark.parametrize("batch_size", [None, MINI, 1], ids=["full", "mini", "sgd"])
@pytest.mark.parametrize("loss", ["squared", "epsilon_insensitive", "hinge", "logistic"])
def test_each_output_equals_its_own_fit(backend, loss, batch_size):
    X, Y = problem(loss, n_outputs=3)
    weight = sample_weights(X.shape[0])
    together = fit(X, Y, backend, loss=loss, batch_size=batch_size, sample_weight=weight)
    assert together.coef.shape == (X.shape[1], 3) and together.intercept.shape == (3,)
    for k in range(3):
        alone = fit(X, Y[:, k], backend, loss=loss, batch_size=batch_size, sample_weight=weight)
        assert alone.coef.shape == (X.shape[1],) and isinstance(alone.intercept, float)
        theta = np.append(together.coef[:, k], together.intercept[k])
        assert rel_err(theta, np.append(alone.coef, alone.intercept)) <= F64_RTOL


@pytest.mark.parametrize("batch_size", [None, MINI, 1], ids=["full", "mini", "sgd"])
@pytest.mark.parametrize("loss", ["squared", "modified_huber", "multinomial"])
def test_unit_weights_are_exactly_no_weights(backend, loss, batch_size):
    X, y = problem(loss)
    plain = fit(X, y, backend, loss=loss, batch_size=batch_size)
    unit = fit(X, y, backend, loss=loss, batch_size=batch_size, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(unit.coef, plain.coef)
    np.testing.assert_array_equal(unit.intercept, plain.intercept)
    np.testing.assert_array_equal(unit.loss_history, plain.loss_history)


def test_a_common_factor_of_the_weights_changes_nothing(backend):
    X, y = problem("huber")
    w = sample_weights(X.shape[0])
    a = fit(X, y, backend, loss="huber", batch_size=MINI, sample_weight=w)
    b = fit(X, y, backend, loss="huber", batch_size=MINI, sample_weight=8.0 * w)
    assert rel_err(b.coef, a.coef) <= 1e-14


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("loss", ["squared", "hinge", "multinomial", "squared_epsilon_insensitive"])
def test_full_batch_integer_weights_equal_repeated_rows(backend, loss, name):
    X, y = problem(loss)
    counts = np.random.default_rng(2).integers(0, 4, X.shape[0])
    counts[:3] = 1  # every class of the multinomial problem keeps a row
    weighted = fit(X, y, backend, loss=loss, optimizer=OPTIMIZERS[name], sample_weight=counts)
    repeated = fit(np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0), backend,
                   loss=loss, optimizer=OPTIMIZERS[name])
    assert rel_err(weighted.coef, repeated.coef) <= F64_RTOL
    assert rel_err(weighted.intercept, repeated.intercept) <= F64_RTOL
    assert rel_err(weighted.loss_history, repeated.loss_history) <= F64_RTOL


def test_zero_weight_rows_do_not_move_the_model(backend):
    """A row of weight 0 contributes nothing, whatever its value (full batch)."""
    X, y = problem("squared")
    w = np.ones(X.shape[0])
    w[5] = 0.0
    y_changed = y.copy()
    y_changed[5] = 1e6
    a = fit(X, y, backend, sample_weight=w)
    b = fit(X, y_changed, backend, sample_weight=w)
    np.testing.assert_array_equal(a.coef, b.coef)


@pytest.mark.parametrize("loss", ["logistic", "modified_huber", "multinomial", "hinge"])
def test_predictions_and_probabilities_have_the_documented_shapes(loss):
    X, y = problem(loss, n_outputs=None if loss == "multinomial" else 3)
    result = fit(X, y, "numpy", loss=loss)
    p = result.decision_function(X)
    assert p.shape == (X.shape[0], 3)
    labels = result.predict(X)
    if loss == "multinomial":
        assert labels.shape == (X.shape[0],)
        np.testing.assert_array_equal(labels, np.argmax(p, axis=1))
        proba = result.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
        np.testing.assert_allclose(np.log(proba[:, 0] / proba[:, 1]), p[:, 0] - p[:, 1],
                                   rtol=1e-10, atol=1e-12)
        return
    np.testing.assert_array_equal(labels, (p > 0).astype(float))
    if loss == "hinge":
        with pytest.raises(ValueError, match="predict_proba"):
            result.predict_proba(X)
        return
    proba = result.predict_proba(X)
    expected = 1 / (1 + np.exp(-p)) if loss == "logistic" else (np.clip(p, -1, 1) + 1) / 2
    np.testing.assert_allclose(proba, expected, rtol=1e-14)
