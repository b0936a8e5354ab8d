"""The input contract: bad input fails early and clearly; odd but valid input just works."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err, theta_of

import fastgd


def data(n: int = 20, d: int = 3, seed: int = 0):
    X, y, _ = fastgd.make_regression(n, d, seed=seed)
    return X, y


def labels(n: int = 20, d: int = 3):
    X, y, _ = fastgd.make_classification(n, d, seed=1)
    return X, y


def with_value(a: np.ndarray, index, value) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


X0, Y0 = data()

# (test id, fit keyword arguments, exception type, fragments the message must contain)
BAD_INPUTS = [
    ("X_nan", dict(X=with_value(X0, (4, 1), np.nan)), ValueError, ["X", "nan", "(4, 1)"]),
    ("X_inf", dict(X=with_value(X0, (0, 2), np.inf)), ValueError, ["X", "inf"]),
    ("X_neg_inf", dict(X=with_value(X0, (3, 0), -np.inf)), ValueError, ["X", "-inf"]),
    ("y_nan", dict(y=with_value(Y0, 7, np.nan)), ValueError, ["y", "nan", "7"]),
    ("y_inf", dict(y=with_value(Y0, 2, np.inf)), ValueError, ["y", "inf"]),
    ("X_1d", dict(X=X0[:, 0]), ValueError, ["X", "2-D", "(20,)"]),
    ("X_3d", dict(X=X0[:, :, None]), ValueError, ["X", "2-D", "(20, 3, 1)"]),
    ("y_3d", dict(y=Y0[:, None, None]), ValueError, ["y", "2-D", "(20, 1, 1)"]),
    ("y_no_columns", dict(y=np.empty((20, 0))), ValueError, ["y", "(20, 0)"]),
    ("y_2d_multinomial", dict(y=np.zeros((20, 2)), loss="multinomial"), ValueError,
     ["y", "1-D", "Multinomial", "(20, 2)"]),
    ("y_not_01_hinge", dict(y=Y0, loss="hinge"), ValueError, ["y", "{0, 1}", "Hinge"]),
    ("y_minus_one_hinge", dict(y=np.where(Y0 > 0, 1.0, -1.0), loss="squared_hinge"),
     ValueError, ["y", "{0, 1}", "SquaredHinge", "-1.0"]),
    ("y_2d_not_01_modified_huber", dict(y=np.full((20, 3), 2.0), loss="modified_huber"),
     ValueError, ["y", "{0, 1}", "ModifiedHuber", "2.0"]),
    ("y_fraction_multinomial", dict(y=np.where(Y0 > 0, 1.5, 0.0), loss="multinomial"),
     ValueError, ["y", "integer", "1.5"]),
    ("y_negative_multinomial", dict(y=np.where(Y0 > 0, 1.0, -2.0), loss="multinomial"),
     ValueError, ["y", "integer", "-2.0"]),
    ("y_one_class_multinomial", dict(y=np.zeros(20), loss="multinomial"), ValueError,
     ["y", "two classes"]),
    ("sample_weight_shape", dict(sample_weight=np.ones(19)), ValueError,
     ["sample_weight", "(20,)", "(19,)"]),
    ("sample_weight_2d", dict(sample_weight=np.ones((20, 1))), ValueError,
     ["sample_weight", "(20, 1)"]),
    ("sample_weight_negative", dict(sample_weight=with_value(np.ones(20), 3, -0.5)), ValueError,
     ["sample_weight", ">= 0", "-0.5"]),
    ("sample_weight_nan", dict(sample_weight=with_value(np.ones(20), 5, np.nan)), ValueError,
     ["sample_weight", "nan", "5"]),
    ("sample_weight_all_zero", dict(sample_weight=np.zeros(20)), ValueError,
     ["sample_weight", "all zero"]),
    ("sample_weight_str", dict(sample_weight=np.ones(20).astype(str)), TypeError,
     ["sample_weight", "<U"]),
    ("coef_init_shape_outputs", dict(y=np.stack([Y0, Y0], axis=1), coef_init=np.zeros(3)),
     ValueError, ["coef_init", "(3, 2)"]),
    ("intercept_init_shape_outputs", dict(y=np.stack([Y0, Y0], axis=1),
                                          intercept_init=np.zeros(3)),
     ValueError, ["intercept_init", "(2,)"]),
    ("y_short", dict(y=Y0[:-1]), ValueError, ["y", "20", "19"]),
    ("y_long", dict(y=np.append(Y0, 1.0)), ValueError, ["y", "20", "21"]),
    ("X_no_rows", dict(X=np.empty((0, 3)), y=np.empty(0)), ValueError, ["X", "(0, 3)"]),
    ("X_no_columns", dict(X=np.empty((20, 0))), ValueError, ["X", "(20, 0)"]),
    ("X_scalar", dict(X=np.float64(3.0)), ValueError, ["X", "()"]),
    ("X_float16", dict(X=X0.astype(np.float16)), TypeError, ["X", "float16"]),
    ("X_complex", dict(X=X0.astype(np.complex128)), TypeError, ["X", "complex128"]),
    ("X_object", dict(X=X0.astype(object)), TypeError, ["X", "object"]),
    ("X_str", dict(X=X0.astype(str)), TypeError, ["X", "<U"]),
    ("X_ragged", dict(X=[[1.0, 2.0], [3.0]]), TypeError, ["X"]),
    ("y_float16", dict(y=Y0.astype(np.float16)), TypeError, ["y", "float16"]),
    ("y_complex", dict(y=Y0.astype(np.complex64)), TypeError, ["y", "complex64"]),
    ("y_str", dict(y=Y0.astype(str)), TypeError, ["y", "<U"]),
    ("batch_size_0", dict(batch_size=0), ValueError, ["batch_size", "0"]),
    ("batch_size_negative", dict(batch_size=-3), ValueError, ["batch_size", "-3"]),
    ("batch_size_above_n", dict(batch_size=21), ValueError, ["batch_size", "21", "20"]),
    ("batch_size_float", dict(batch_size=2.5), TypeError, ["batch_size", "2.5"]),
    ("epochs_0", dict(epochs=0), ValueError, ["epochs", "0"]),
    ("epochs_negative", dict(epochs=-1), ValueError, ["epochs", "-1"]),
    ("epochs_float", dict(epochs=3.0), TypeError, ["epochs", "3.0"]),
    ("lr_0", dict(lr=0.0), ValueError, ["lr", "0.0"]),
    ("lr_negative", dict(lr=-0.1), ValueError, ["lr", "-0.1"]),
    ("lr_nan", dict(lr=float("nan")), ValueError, ["lr", "nan"]),
    ("lr_inf", dict(lr=float("inf")), ValueError, ["lr", "inf"]),
    ("lr_str", dict(lr="fast"), TypeError, ["lr", "fast"]),
    ("alpha_negative", dict(penalty="l2", alpha=-1e-3), ValueError, ["alpha", "-0.001"]),
    ("alpha_nan", dict(penalty="l2", alpha=float("nan")), ValueError, ["alpha", "nan"]),
    ("l1_ratio_above_1", dict(penalty="elasticnet", l1_ratio=1.5), ValueError,
     ["l1_ratio", "1.5"]),
    ("l1_ratio_negative", dict(penalty="elasticnet", l1_ratio=-0.2), ValueError,
     ["l1_ratio", "-0.2"]),
    ("loss_unknown", dict(loss="ridge"), ValueError,
     ["loss", "'ridge'", "squared", "huber", "logistic", "hinge", "multinomial",
      "epsilon_insensitive", "log_loss"]),
    ("optimizer_unknown", dict(optimizer="lbfgs"), ValueError,
     ["optimizer", "'lbfgs'", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
      "adamw"]),
    ("penalty_unknown", dict(penalty="l3"), ValueError, ["penalty", "'l3'", "l2", "elasticnet"]),
    ("backend_unknown", dict(backend="torch"), ValueError,
     ["backend", "'torch'", "numpy", "numba", "jax"]),
    ("coef_init_shape", dict(coef_init=np.zeros(4)), ValueError, ["coef_init", "(3,)", "(4,)"]),
    ("coef_init_nan", dict(coef_init=np.array([0.0, np.nan, 0.0])), ValueError,
     ["coef_init", "nan"]),
    ("intercept_init_nan", dict(intercept_init=float("nan")), ValueError,
     ["intercept_init", "nan"]),
    ("intercept_init_without_intercept", dict(intercept_init=1.0, fit_intercept=False),
     ValueError, ["intercept_init", "fit_intercept"]),
    ("tol_nan", dict(tol=float("nan")), ValueError, ["tol", "nan"]),
    ("tol_str", dict(tol="small"), ValueError, ["tol", "small"]),
    ("n_iter_no_change_0", dict(tol=1e-3, n_iter_no_change=0), ValueError,
     ["n_iter_no_change", "0"]),
    ("callback_not_callable", dict(callback=3), TypeError, ["callback", "3"]),
    ("shuffle_not_bool", dict(shuffle="yes"), TypeError, ["shuffle", "yes"]),
    ("fit_intercept_not_bool", dict(fit_intercept=None), TypeError, ["fit_intercept", "None"]),
]


def call_fit(default_backend: str, **overrides):
    kwargs = dict(X=X0, y=Y0, epochs=2, backend=default_backend)
    kwargs.update(overrides)
    return fastgd.fit(kwargs.pop("X"), kwargs.pop("y"), **kwargs)


@pytest.mark.parametrize(
    ("overrides", "error", "fragments"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_rejected_naming_argument_and_value(backend, overrides, error, fragments):
    copies = {k: np.array(v, copy=True) for k, v in overrides.items()
              if isinstance(v, np.ndarray)}
    x_copy, y_copy = X0.copy(), Y0.copy()
    with pytest.raises(error) as info:
        call_fit(backend, **overrides)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for key, original in copies.items():  # the caller's arrays are untouched
        np.testing.assert_array_equal(overrides[key], original, strict=True)
    np.testing.assert_array_equal(X0, x_copy, strict=True)
    np.testing.assert_array_equal(Y0, y_copy, strict=True)


@pytest.mark.parametrize("bad", [2.0, -1.0, 0.5])
def test_logistic_labels_must_be_zero_or_one(backend, bad):
    X, y = labels()
    y_bad = with_value(y, 5, bad)
    kept = y_bad.copy()
    with pytest.raises(ValueError) as info:
        fastgd.fit(X, y_bad, loss="logistic", epochs=1, backend=backend)
    assert "y" in str(info.value) and repr(bad) in str(info.value)
    assert "{0, 1}" in str(info.value)
    np.testing.assert_array_equal(y_bad, kept)


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: fastgd.Huber(epsilon=0.0), ["epsilon", "0.0"]),
        (lambda: fastgd.Huber(epsilon=float("nan")), ["epsilon", "nan"]),
        (lambda: fastgd.SGD(lr=-1.0), ["lr", "-1.0"]),
        (lambda: fastgd.SGD(momentum=1.0), ["momentum", "1.0"]),
        (lambda: fastgd.SGD(momentum=-0.1), ["momentum", "-0.1"]),
        (lambda: fastgd.AdaGrad(initial_accumulator_value=-1.0),
         ["initial_accumulator_value", "-1.0"]),
        (lambda: fastgd.AdaGrad(eps=0.0), ["eps", "0.0"]),
        (lambda: fastgd.RMSProp(decay=1.2), ["decay", "1.2"]),
        (lambda: fastgd.Adam(b1=1.0), ["b1", "1.0"]),
        (lambda: fastgd.Adam(b2=-0.5), ["b2", "-0.5"]),
        (lambda: fastgd.AdamW(weight_decay=-1e-3), ["weight_decay", "-0.001"]),
        (lambda: fastgd.invscaling(0.0), ["lr0", "0.0"]),
        (lambda: fastgd.invscaling(0.1, power_t=-1.0), ["power_t", "-1.0"]),
        (lambda: fastgd.exponential(0.1, decay_rate=0.0, decay_steps=5), ["decay_rate", "0.0"]),
        (lambda: fastgd.exponential(0.1, decay_rate=0.5, decay_steps=0), ["decay_steps", "0"]),
        (lambda: fastgd.cosine(0.1, decay_steps=-2), ["decay_steps", "-2"]),
        (lambda: fastgd.cosine(0.1, decay_steps=5, final_fraction=2.0), ["final_fraction", "2.0"]),
    ],
)
def test_bad_hyper_parameters_fail_on_construction(make, fragments):
    with pytest.raises(ValueError) as info:
        make()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_nesterov_flag_must_be_a_bool():
    with pytest.raises(TypeError, match="nesterov"):
        fastgd.SGD(momentum=0.5, nesterov="yes")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        fastgd.get_backend("cupy")
    assert "'cupy'" in str(info.value) and "numpy" in str(info.value)


def test_caller_arrays_are_never_modified(backend):
    X, y = data()
    coef_init = np.array([0.5, -0.5, 0.25])
    kept = X.copy(), y.copy(), coef_init.copy()
    result = fastgd.fit(X, y, optimizer="adam", batch_size=4, epochs=3, coef_init=coef_init,
                        intercept_init=0.1, penalty="l1", seed=0, backend=backend)
    for array, original in zip((X, y, coef_init), kept, strict=True):
        np.testing.assert_array_equal(array, original, strict=True)
    assert not np.shares_memory(result.coef, coef_init)
    assert not np.shares_memory(result.coef, X)


def reference_fit(X, y, backend):
    return fastgd.fit(X, y, optimizer="adam", batch_size=6, epochs=2, seed=3, backend=backend)


@pytest.mark.parametrize("layout", ["fortran", "strided_rows", "strided_columns", "memmap"])
def test_unusual_layouts_give_the_same_result(backend, layout, dtype, tmp_path):
    X_big, y_big = data(n=40, d=6)
    X_big, y_big = X_big.astype(dtype), y_big.astype(dtype)
    if layout == "fortran":
        X, y = np.asfortranarray(X_big[:20, :3]), y_big[:20]
    elif layout == "strided_rows":
        X, y = X_big[::2, :3], y_big[::2]
    elif layout == "strided_columns":
        X, y = X_big[:20, ::2], y_big[:20]
    else:
        X = np.memmap(tmp_path / "X.dat", dtype=dtype, mode="w+", shape=(20, 3))
        X[:] = X_big[:20, :3]
        X.flush()
        X = np.memmap(tmp_path / "X.dat", dtype=dtype, mode="r", shape=(20, 3))
        y = np.memmap(tmp_path / "y.dat", dtype=dtype, mode="w+", shape=(20,))
        y[:] = y_big[:20]
    expected = reference_fit(np.array(X, order="C"), np.array(y), backend)
    result = reference_fit(X, y, backend)
    assert result.coef.dtype == dtype and type(result.coef) is np.ndarray
    np.testing.assert_array_equal(theta_of(result), theta_of(expected))


@pytest.mark.parametrize("kind", [np.int64, np.int32, np.bool_])
def test_ints_and_bools_become_float64(backend, kind):
    X, y = data()
    Xi = (X > 0).astype(kind) if kind is np.bool_ else np.round(3 * X).astype(kind)
    result = fastgd.fit(Xi, np.round(y).astype(np.int64), epochs=2, backend=backend)
    expected = fastgd.fit(Xi.astype(np.float64), np.round(y), epochs=2, backend=backend)
    assert result.coef.dtype == np.float64
    assert rel_err(theta_of(result), theta_of(expected)) == 0.0


def test_numpy_scalars_are_accepted_as_numbers(backend):
    X, y = data()
    result = fastgd.fit(X, y, lr=np.float32(0.01), batch_size=np.int64(4), epochs=np.int32(3),
                        penalty="elasticnet", alpha=np.float32(1e-3), l1_ratio=np.float64(0.5),
                        tol=np.float32(1e-9), n_iter_no_change=np.int16(2), seed=0,
                        backend=backend)
    expected = fastgd.fit(X, y, lr=float(np.float32(0.01)), batch_size=4, epochs=3,
                          penalty="elasticnet", alpha=float(np.float32(1e-3)), l1_ratio=0.5,
                          tol=1e-9, n_iter_no_change=2, seed=0, backend=backend)
    np.testing.assert_array_equal(theta_of(result), theta_of(expected))


def test_lists_are_accepted(backend):
    X, y = data(n=8, d=2)
    result = fastgd.fit(X.tolist(), y.tolist(), epochs=2, backend=backend)
    expected = fastgd.fit(X, y, epochs=2, backend=backend)
    np.testing.assert_array_equal(theta_of(result), theta_of(expected))


def test_float32_stays_float32(backend):
    X, y = data()
    result = fastgd.fit(X.astype(np.float32), y.astype(np.float32), epochs=2, backend=backend)
    assert result.coef.dtype == np.float32
    assert result.predict(X).dtype == np.float32
    assert result.loss_history.dtype == np.float64


def test_predict_checks_its_input():
    X, y = data()
    result = fastgd.fit(X, y, epochs=2)
    with pytest.raises(ValueError, match="3 features"):
        result.predict(X[:, :2])
    with pytest.raises(ValueError, match="finite"):
        result.predict(with_value(X, (0, 0), np.nan))
    with pytest.raises(ValueError, match="logistic"):
        result.predict_proba(X)


def test_starting_values_whose_sum_overflows_are_finite_and_accepted():
    # the finiteness test of coef_init sums first: a sum that overflows is no proof of a
    # bad entry, and the entry-by-entry test then decides
    from fastgd.plan import _check_init

    huge = np.array([1e308, 1e308, -np.finfo(np.float64).max])
    np.testing.assert_array_equal(_check_init("coef_init", huge, (3,)), huge)
    with pytest.raises(ValueError, match="coef_init"):
        _check_init("coef_init", np.array([1e308, np.inf, 0.0]), (3,))
