"""Property-based checks over shapes and edge cases (n = 1, d = 1, ragged last batches)."""

from __future__ import annotations

import numpy as np
import reference as ref
from helpers import OPTIMIZERS, as_list, as_rows, lowered, model_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgd

#: The jax backend compiles one program per shape and batch size, so it gets fewer cases.
EXAMPLES = {"jax": 6}


@st.composite
def cases(draw):
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 3))
    batch_size = draw(st.one_of(st.none(), st.integers(1, n)))
    loss = draw(st.sampled_from(["squared", "huber", "logistic"]))
    penalty = draw(st.sampled_from([None, "l2", "l1", "elasticnet"]))
    name = draw(st.sampled_from(sorted(OPTIMIZERS)))
    shuffle = draw(st.booleans())
    fit_intercept = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, d, batch_size, loss, penalty, name, shuffle, fit_intercept, seed


def check_against_oracle(backend, case):
    n, d, batch_size, loss, penalty, name, shuffle, fit_intercept, seed = case
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(float) if loss == "logistic" else rng.standard_normal(n)
    epochs = 2
    result = fastgd.fit(X, y, loss=loss, optimizer=OPTIMIZERS[name], batch_size=batch_size,
                        epochs=epochs, penalty=penalty, alpha=0.05, l1_ratio=0.4,
                        shuffle=shuffle, seed=seed, fit_intercept=fit_intercept,
                        backend=backend)
    orders = ref.shuffled_orders(seed, n, epochs, shuffle)
    theta, losses = ref.train(as_rows(X), as_list(y), [0.0] * (d + 1), orders,
                              batch_size or n, model_for(loss, penalty, 0.05, 0.4, fit_intercept),
                              lowered(OPTIMIZERS[name]))
    got = np.append(result.coef, result.intercept)
    scale = max(1.0, float(np.max(np.abs(theta))))
    assert np.max(np.abs(got - theta)) <= 1e-10 * scale
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-10, atol=1e-12)
    assert result.n_updates == epochs * -(-n // (batch_size or n))
    if not fit_intercept:
        assert result.intercept == 0.0


def test_any_shape_and_batch_size_matches_oracle(backend):
    run = settings(max_examples=EXAMPLES.get(backend, 40), deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])(given(cases())(
                       lambda case: check_against_oracle(backend, case)))
    run()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 30),
    d=st.integers(1, 4),
    epochs=st.integers(1, 4),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_epoch_orders_are_permutations(n, d, epochs, shuffle, seed):
    from fastgd.data import epoch_orders

    orders = epoch_orders(np.random.default_rng(seed), n, epochs, shuffle)
    assert orders.shape == (epochs, n) and orders.dtype == np.int64
    for order in orders:
        assert sorted(order.tolist()) == list(range(n))
    assert orders.tolist() == ref.shuffled_orders(seed, n, epochs, shuffle)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    p=st.floats(-50, 50),
    y=st.floats(-5, 5),
    eps=st.floats(0.01, 5),
    label=st.sampled_from([0.0, 1.0]),
)
def test_numpy_per_sample_losses_match_oracle(p, y, eps, label):
    """The numpy kernels on one sample (m = 1, d = 1) against the oracle's formulas."""
    import fastgd.backends.numpy as numpy_backend

    X = np.array([[1.0]])
    sign = 2.0 * label - 1.0
    for spec, target in ((fastgd.Squared(), y), (fastgd.Huber(eps), y),
                         (fastgd.Logistic(), label), (fastgd.Hinge(), sign),
                         (fastgd.SquaredHinge(), sign), (fastgd.ModifiedHuber(), sign),
                         (fastgd.EpsilonInsensitive(eps), y),
                         (fastgd.SquaredEpsilonInsensitive(eps), y)):
        model = model_for(spec)
        data = numpy_backend.Data(X, np.array([[target]]))
        value, grad = numpy_backend.loss_grad(data, np.array([[p], [0.0]]), model)
        code, param = model.loss_code, model.loss_param
        expected = ref.sample_loss(code, param, p, target)
        derivative = ref.sample_dloss(code, param, p, target)
        assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected))
        assert abs(grad[0, 0] - derivative) <= 1e-12 and abs(grad[1, 0] - derivative) <= 1e-12
