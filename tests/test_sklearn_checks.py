"""scikit-learn's own estimator checks, for both estimators on every backend.

The expected failures are the two scikit-learn declares for its own SGD estimators:
per-sample SGD visits a row of weight 2 once, where two copies of the row are two
updates, so weights and repetition are not the same training. With full-batch GD
(``batch_size=None``) they are (fastgd's weights are relative), and those checks pass.
"""

from __future__ import annotations

import pytest
from helpers import BACKENDS

import fastgd

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_sample_weight_equivalence_on_dense_data,
    parametrize_with_checks,
)

#: As scikit-learn runs its own SGD estimators' checks: 5 epochs.
ESTIMATORS = [
    cls(max_iter=5, backend=name)
    for name in BACKENDS
    for cls in (fastgd.GDClassifier, fastgd.GDRegressor)
]
SGD_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": "per-sample SGD: a weight of 2 is one "
    "update, two copies of the row are two (scikit-learn's SGD declares the same)",
    "check_sample_weight_equivalence_on_sparse_data": "as the dense one",
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: SGD_EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [fastgd.GDClassifier, fastgd.GDRegressor])
def test_full_batch_weights_equal_repeated_rows_in_scikit_learns_check(backend, cls):
    estimator = cls(max_iter=5, batch_size=None, backend=backend)
    check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)
