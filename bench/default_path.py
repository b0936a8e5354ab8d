"""scikit-learn's default path, per-sample SGD, against ``SGDClassifier()`` itself.

Run from the repository root: ``python bench/default_path.py`` (a minute or two). What
most scikit-learn users run is ``SGDClassifier()``'s defaults: hinge loss, l2 penalty
(alpha 1e-4), ``learning_rate="optimal"``, per-sample SGD, shuffled. In fastgd that is
``fit(loss="hinge", penalty="l2", alpha=1e-4, lr=optimal(1e-4), batch_size=1,
optimizer="sgd", backend="numba", max_dloss=1e12)``, one output, which runs
``_sgd_epochs_l2`` in ``fastgd/backends/numba/sgd.py``.

The problem: 500,000 x 100 float64 (``fastgd.make_regression``, labels by the sign of
the target), 5 epochs, ``tol=None``. Runners:

- fastgd numba in order, through ``fit(shuffle=False)``;
- fastgd numba shuffled in scikit-learn's own row order (``SklearnShuffle``), through the
  backend's ``run_epochs`` on data prepared once (as ``fit`` prepares it);
- fastgd numba in order through ``run_epochs`` too (what ``fit`` adds is the difference);
- ``GDClassifier(backend="numba")`` with the same parameters, in order and shuffled
  (``random_state=0``: scikit-learn's own row order);
- ``SGDClassifier`` with the same parameters, in order and shuffled (``random_state=0``).

Then both estimators on all their defaults (``tol=1e-3``, ``max_iter=1000``, shuffled):
time to fit, and the ``n_iter_`` each ran, side by side.

Every runner is called once before the rounds (JIT compilation stays out of the
timings) and its coefficients and intercept are checked against scikit-learn's (1e-8
relative), so a fast wrong answer fails the script. The runners are then timed
interleaved in rounds (``bench/targets.py``'s ``interleaved``: each round runs every
runner once, in a rotated order); a figure is the median of the rounds, and a ratio is a
ratio of medians. On a shared machine the timings are noisy: read the medians and the
IQR, and rerun when in doubt.

``--sweep`` also times the kernel alone for several prefetch distances (in samples
ahead along the epoch's order), shuffled and in order.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import interleaved, report  # noqa: E402

import fastgd  # noqa: E402
from fastgd.sklearn_shuffle import SklearnShuffle, binary_seed  # noqa: E402
from fastgd.specs import SGD, lower_model, lower_optimizer, optimal, resolve_loss  # noqa: E402

N, D, EPOCHS, ALPHA, SEED = 500_000, 100, 5, 1e-4, 0


def problem(n: int = N, d: int = D) -> tuple[np.ndarray, np.ndarray]:
    """A float64 binary problem: make_regression's X, labels 1 where its target > 0."""
    X, y, _ = fastgd.make_regression(n, d, dtype=np.float64, seed=0)
    return X, (y > 0).astype(np.int64)


def sklearn_runner(X, labels, shuffle: bool):
    from sklearn.linear_model import SGDClassifier

    def run():
        peer = SGDClassifier(
            loss="hinge", penalty="l2", alpha=ALPHA, learning_rate="optimal", shuffle=shuffle,
            tol=None, max_iter=EPOCHS, random_state=SEED,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter reached without tol: expected
            peer.fit(X, labels)
        return np.append(peer.coef_.ravel(), peer.intercept_)

    return run


def estimator_runner(X, labels, shuffle: bool):
    """``GDClassifier(backend="numba")`` with the same parameters: scikit-learn's order when
    shuffled (the estimator reproduces its shuffle)."""

    def run():
        ours = fastgd.GDClassifier(
            loss="hinge", penalty="l2", alpha=ALPHA, learning_rate="optimal", shuffle=shuffle,
            tol=None, max_iter=EPOCHS, random_state=SEED, backend="numba",
        )
        ours.fit(X, labels)
        return np.append(ours.coef_.ravel(), ours.intercept_)

    return run


def default_tol(X, labels, rounds: int) -> None:
    """Both estimators on all their defaults (tol 1e-3, max_iter 1000, shuffled): time to
    fit and the epochs each ran."""
    from sklearn.linear_model import SGDClassifier

    made = {}

    def runner(name, make):
        def run():
            made[name] = make().fit(X, labels)
            return made[name]

        return run

    runners = {
        "GDClassifier(backend='numba')": runner(
            "ours", lambda: fastgd.GDClassifier(random_state=SEED, backend="numba")),
        "SGDClassifier()": runner("peer", lambda: SGDClassifier(random_state=SEED)),
    }
    for run in runners.values():
        run()
    check("defaults, GDClassifier against SGDClassifier",
          np.append(made["ours"].coef_, made["ours"].intercept_),
          np.append(made["peer"].coef_, made["peer"].intercept_))  # fmt: skip
    print(f"- n_iter_: fastgd {made['ours'].n_iter_}, scikit-learn {made['peer'].n_iter_}; "
          f"t_: {made['ours'].t_:.0f} and {made['peer'].t_:.0f}")  # fmt: skip
    m = report(f"all defaults (tol 1e-3), time to fit (ms), {rounds} rounds",
               interleaved(runners, rounds))  # fmt: skip
    ratio = m["SGDClassifier()"] / m["GDClassifier(backend='numba')"]
    print(f"- SGDClassifier() / GDClassifier(backend='numba'): {ratio:.2f}")


def fit_runner(X, labels):
    def run():
        res = fastgd.fit(
            X, labels, loss="hinge", penalty="l2", alpha=ALPHA, lr=optimal(ALPHA), batch_size=1,
            optimizer="sgd", backend="numba", max_dloss=1e12, epochs=EPOCHS, shuffle=False,
            tol=None,
        )
        return np.append(res.coef, res.intercept)

    return run


class Prepared:
    """The backend's data, a zero theta and the lowered model, as ``fit`` makes them."""

    def __init__(self, X, labels):
        self.nb = fastgd.get_backend("numba")
        Y = np.where(labels > 0, 1.0, -1.0)[:, None]  # hinge's targets are ±1
        self.data, self.theta0 = self.nb.prepare(X, Y, np.zeros((X.shape[1] + 1, 1)), None, None)
        self.model = lower_model(resolve_loss("hinge"), ALPHA, 0.0, True, 1e12)
        self.opt = lower_optimizer(SGD(lr=optimal(ALPHA)))

    def runner(self, orders: np.ndarray):
        def run():
            theta = self.theta0.copy()
            theta, _, _ = self.nb.run_epochs(
                self.data, theta, self.nb.init_state(theta, self.opt), orders, 1, self.model,
                self.opt,
            )
            return theta.ravel()

        return run


def check(what: str, result, reference, rtol: float = 1e-8) -> float:
    err = float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))
    print(f"- {what}: max relative difference {err:.1e}")
    if not err <= rtol:
        raise AssertionError(f"{what}: relative difference {err:.2e} > {rtol:.0e}")
    return err


def sweep(prepared: Prepared, orders: dict[str, np.ndarray], rounds: int) -> None:
    """The kernel alone, for several prefetch distances (samples ahead)."""
    from numba import njit

    from fastgd.backends.numba.sgd import _sgd_epochs_l2
    from fastgd.backends.numba.updates import _opt_args
    from fastgd.specs import LOSS_HINGE

    X, Y, _ = prepared.data
    y = Y.reshape(-1)
    _, _, schedule_code, schedule_params = _opt_args(prepared.opt)
    loss_code = LOSS_HINGE  # a closure constant, as in the backend's entry points

    @njit(nogil=True)  # arrays as arguments: numba would freeze a global array into the code
    def epochs(X, y, theta, slots, orders, schedule_code, schedule_params, epoch_losses, ahead):
        return _sgd_epochs_l2(
            X, y, np.empty(0, dtype=X.dtype), theta, slots, 0, orders, loss_code, 0.0, 1e12,
            ALPHA, True, schedule_code, schedule_params, epoch_losses, ahead,
        )

    def kernel(orders, ahead):
        def run():
            theta = prepared.theta0.copy().reshape(-1)
            slots = np.zeros((2, theta.shape[0]))
            epochs(X, y, theta, slots, orders, schedule_code, schedule_params, np.empty(EPOCHS),
                   ahead)  # fmt: skip
            return theta

        return run

    runners = {}
    for tag, order in orders.items():
        for ahead in (1, 2, 4, 8, 16, 32):
            runners[f"kernel {tag}, {ahead} ahead"] = kernel(order, ahead)
        runners[f"kernel {tag}, no prefetch"] = kernel(order, X.shape[0])
    for run in runners.values():
        run()
    report("prefetch distance (samples ahead), the kernel alone", interleaved(runners, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sweep", action="store_true", help="time prefetch distances too")
    args = parser.parse_args()

    X, labels = problem()
    n = X.shape[0]
    prepared = Prepared(X, labels)
    shuffled = np.ascontiguousarray(SklearnShuffle(binary_seed(SEED)).epoch_orders(n, EPOCHS))
    in_order = np.broadcast_to(np.arange(n), (EPOCHS, n))
    runners = {
        "GDClassifier numba, in order": estimator_runner(X, labels, False),
        "GDClassifier numba, shuffled": estimator_runner(X, labels, True),
        "fastgd numba fit, in order": fit_runner(X, labels),
        "fastgd numba run_epochs, in order": prepared.runner(in_order),
        "fastgd numba run_epochs, shuffled": prepared.runner(shuffled),
        "SGDClassifier, in order": sklearn_runner(X, labels, False),
        "SGDClassifier, shuffled": sklearn_runner(X, labels, True),
    }
    print(f"# scikit-learn's default path: hinge + l2 (alpha {ALPHA}) + optimal, per-sample, "
          f"{n:,} x {X.shape[1]} float64, {EPOCHS} epochs, tol None")  # fmt: skip
    print("\nanswers against scikit-learn's (each runner's first call also compiles):")
    expected = {tag: runners[f"SGDClassifier, {tag}"]() for tag in ("in order", "shuffled")}
    for name, run in runners.items():
        if not name.startswith("SGDClassifier"):
            check(name, run(), expected[name.rsplit(", ", 1)[1]])
    times = interleaved(runners, args.rounds)
    m = report(f"times (ms), {args.rounds} rounds interleaved; noisy on a shared machine: "
               "read the medians", times)  # fmt: skip
    print()
    for tag, target in (("shuffled", ">= 1.8"), ("in order", ">= 1.5")):
        value = m[f"SGDClassifier, {tag}"] / m[f"GDClassifier numba, {tag}"]
        print(f"- SGDClassifier / GDClassifier numba, {tag}: {value:.2f} (target {target})")
        ours = "fit" if tag == "in order" else "run_epochs"
        value = m[f"SGDClassifier, {tag}"] / m[f"fastgd numba {ours}, {tag}"]
        print(f"- SGDClassifier / fastgd numba {ours}, {tag}: {value:.2f}")
    value = m["SGDClassifier, in order"] / m["fastgd numba run_epochs, in order"]
    print(f"- SGDClassifier / fastgd numba run_epochs, in order: {value:.2f}")
    default_tol(X, labels, max(3, args.rounds // 3))
    if args.sweep:
        sweep(prepared, {"shuffled": shuffled, "in order": np.ascontiguousarray(in_order)},
              args.rounds)  # fmt: skip


if __name__ == "__main__":
    main()
