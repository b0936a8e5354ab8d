"""The speed targets of the large problems, as ratios measured side by side in one process.

Run from the repository root (``make targets``, or ``python bench/targets.py``). Each
section times its runners interleaved: round r runs every runner once, in a rotated
order, so that a slow spell of a shared machine lands on all of them alike, each call
once the previous runner's threads are idle (as ``fastgd compare`` does). A runner's
figure is the median of its rounds, with the minimum, the 90th percentile and the
interquartile range beside it; a ratio is a ratio of medians. Every runner is called
once before the rounds (JIT compilation, caches) and its answer is checked against
another runner's, so a fast wrong answer fails the script.

Sections (float64 throughout, the problems of ``bench/test_bench_fit.py``):

1. per-sample SGD, 200,000 x 100, 5 epochs in order: ``fit`` (numba) against
   scikit-learn's ``SGDRegressor``;
2. mini-batch Adam, batch 64, 200,000 x 100, 5 epochs: ``fit`` (numba, jax; in order and
   shuffled) against an optax ``jit`` + ``lax.scan`` loop whose data already sit on the
   device; the tail (p90 / median) of each; and the floor of any shuffled pass on this
   machine: a numba loop that only reads and sums the rows, in order and shuffled;
3. full-batch GD, 2,000,000 x 32, 10 epochs: ``fit`` against ten numpy ``X @ w``; the
   fixed cost of a fit (``fit`` minus ``run_epochs`` of the same epochs on prepared
   data) against the input check alone and one numpy read of X;
4. the bare kernel: ``loss_grad`` on that problem against one epoch inside ``run_epochs``
   (ten epochs / 10) and ``X @ w``;
5. cold start: a fresh interpreter that imports fastgd and runs a small numba fit.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
from peers import OptaxLoop, sklearn_sgd

import fastgd
from fastgd.backends import get_backend
from fastgd.compare import _quiesce
from fastgd.data import check_X_y, epoch_orders
from fastgd.specs import SGD, Adam, Squared, lower_model, lower_optimizer

Runner = Callable[[], object]


@functools.cache
def problem(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The float64 regression problem of shape (n, d), made once for every section."""
    X, y, _ = fastgd.make_regression(n, d, dtype=np.float64, seed=0)
    return X, y


def _row_sum_kernel():
    """A numba loop that reads every row of X in a given order, prefetching ahead as
    fastgd's kernels do, and sums them: the least a pass over shuffled rows costs."""
    from numba import njit

    from fastgd.backends.numba.rows import _prefetch_distance, _prefetch_row

    @njit
    def row_sums(X, orders):
        n, d = X.shape
        acc = np.zeros(d)
        ahead = _prefetch_distance(X)
        for order in orders:
            for k in range(n):
                if k + ahead < n:
                    _prefetch_row(X, order[k + ahead])
                x = X[order[k]]
                for j in range(d):
                    acc[j] += x[j]
        return acc

    return row_sums


def _ready(value: object) -> object:
    if hasattr(value, "block_until_ready"):
        value.block_until_ready()
    return value


def interleaved(runners: dict[str, Runner], rounds: int) -> dict[str, np.ndarray]:
    """Seconds of each runner over ``rounds`` rounds, every runner once per round."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            _quiesce()  # the previous runner's threads may still spin (see fastgd compare)
            start = time.perf_counter()
            _ready(runners[name]())
            times[name].append(time.perf_counter() - start)
    return {name: np.array(t) for name, t in times.items()}


def report(title: str, times: dict[str, np.ndarray]) -> dict[str, float]:
    """Print one table (ms) and return the medians (s)."""
    print(f"\n## {title}\n")
    print(f"{'runner':34s} {'median':>9s} {'min':>9s} {'p90':>9s} {'IQR':>8s} {'p90/med':>8s}")
    medians = {}
    for name, t in times.items():
        q1, med, q3, p90 = np.percentile(t, [25, 50, 75, 90])
        medians[name] = med
        print(
            f"{name:34s} {med * 1e3:9.2f} {t.min() * 1e3:9.2f} {p90 * 1e3:9.2f} "
            f"{(q3 - q1) * 1e3:8.2f} {p90 / med:8.2f}"
        )
    return medians


def print_process_table(runs: list[dict[str, float]], targets: dict[str, str]) -> None:
    """One row per ratio of ``runs`` (one dict per process): its value in each process,
    then their median, min and max, and its target from ``targets`` (e.g. ``"<= 1.6"``)."""
    names = list(runs[0])
    print(f"{'':32s}" + "".join(f" {'p' + str(k + 1):>6s}" for k in range(len(runs)))
          + f" {'median':>7s} {'min':>5s} {'max':>5s}  target")  # fmt: skip
    for name in names:  # a space before every figure: columns stay apart at any size
        values = np.array([r[name] for r in runs])
        print(f"{name:32s}" + "".join(f" {v:6.2f}" for v in values)
              + f" {np.median(values):7.2f} {values.min():5.2f} {values.max():5.2f}  "
              + targets.get(name, ""))  # fmt: skip


def run_processes(script: str, args: list[str], processes: int) -> list[dict[str, float]]:
    """Run ``script`` with ``args`` in ``processes`` processes, one after the other, each
    writing its ratios to the JSON file named by ``--ratios-json``; return them in order
    (a ratio moves between processes, with where the data lands in memory, more than
    within one)."""
    import json
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(processes):
            path = os.path.join(tmp, f"{k}.json")
            cmd = [sys.executable, script, *args, "--ratios-json", path]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
            with open(path) as f:
                runs.append(json.load(f))
    return runs


def ratio(what: str, value: float, target: str) -> None:
    print(f"- {what}: {value:.2f} (target {target})")


def check(what: str, result, reference, rtol: float) -> None:
    result = np.asarray(result, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    err = np.max(np.abs(result - reference)) / np.max(np.abs(reference))
    if not err <= rtol:
        raise AssertionError(f"{what}: relative difference {err:.2e} > {rtol:.0e}")


def theta_of(res: fastgd.FitResult) -> np.ndarray:
    return np.append(res.coef, res.intercept)


def per_sample_sgd(rounds: int) -> None:
    X, y = problem(200_000, 100)

    def numba_fit():
        return fastgd.fit(X, y, optimizer=SGD(lr=1e-3), batch_size=1, epochs=5,
                          shuffle=False, backend="numba")  # fmt: skip

    def sklearn_fit():
        return sklearn_sgd(X, y, 1e-3, 5)

    runners = {"fit numba": numba_fit, "scikit-learn SGDRegressor": sklearn_fit}
    check("numba vs scikit-learn", theta_of(numba_fit()), sklearn_fit(), 1e-8)
    m = report("1. per-sample SGD, 200,000 x 100, 5 epochs", interleaved(runners, rounds))
    ratio("scikit-learn / numba", m["scikit-learn SGDRegressor"] / m["fit numba"], ">= 4")


def mini_batch_adam(rounds: int) -> None:
    n, d = 200_000, 100
    X, y = problem(n, d)

    def fit(backend: str, shuffle: bool) -> Runner:
        return lambda: fastgd.fit(X, y, optimizer=Adam(lr=1e-3), batch_size=64, epochs=5,
                                  shuffle=shuffle, seed=0, backend=backend)  # fmt: skip

    runners: dict[str, Runner] = {}
    row_sums = _row_sum_kernel()
    for shuffle in (False, True):
        orders = epoch_orders(np.random.default_rng(0), n, 5, shuffle)
        loop = OptaxLoop(X, y, orders, 64, "adam", 1e-3)
        expected = loop()
        tag = "shuffled" if shuffle else "in order"
        for backend in ("numba", "jax"):
            check(f"{backend} {tag} vs optax", theta_of(fit(backend, shuffle)()), expected, 1e-8)
            runners[f"fit {backend} {tag}"] = fit(backend, shuffle)
        runners[f"optax loop on device {tag}"] = loop
        plain = np.ascontiguousarray(orders)
        check(f"row sums {tag}", row_sums(X, plain), 5 * X.sum(axis=0), 1e-10)
        runners[f"floor: read the rows {tag}"] = lambda plain=plain: row_sums(X, plain)
    times = interleaved(runners, rounds)
    m = report("2. mini-batch Adam, batch 64, 200,000 x 100, 5 epochs", times)
    for backend, target in (("numba", ">= 1.15"), ("jax", ">= 1.0")):
        ratio(f"optax / {backend}, in order", m["optax loop on device in order"]
              / m[f"fit {backend} in order"], target)  # fmt: skip
    for backend in ("numba", "jax", "optax loop on device", "floor: read the rows"):
        runner = backend if " " in backend else f"fit {backend}"
        ratio(f"{backend}: shuffled / in order", m[f"{runner} shuffled"]
              / m[f"{runner} in order"], "<= 1.25")  # fmt: skip
    extra = m["floor: read the rows shuffled"] - m["floor: read the rows in order"]
    print(f"  reading the rows shuffled costs the machine {extra * 1e3:.1f} ms more than in "
          "order, whatever is computed on them")  # fmt: skip


class _TimedRunEpochs:
    """Wraps a backend's ``run_epochs`` to record how long each call inside ``fit`` took."""

    def __init__(self, backend):
        self.backend, self.inner, self.seconds = backend, backend.run_epochs, []

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = self.inner(*args, **kwargs)
            _ready(out[0])
            self.seconds.append(time.perf_counter() - start)
            return out

        self.backend.run_epochs = timed
        return self

    def __exit__(self, *exc):
        self.backend.run_epochs = self.inner


def full_batch(rounds: int) -> None:
    n, d, epochs = 2_000_000, 32, 10
    X, y = problem(n, d)
    w = np.zeros(d)
    runners: dict[str, Runner] = {"numpy X @ w": lambda: X @ w,
                                  "numpy X.sum()": X.sum,
                                  "input check (check_X_y)": lambda: check_X_y(X, y)}  # fmt: skip
    reference = theta_of(fastgd.fit(X, y, optimizer=SGD(lr=0.1), epochs=epochs, backend="numpy"))
    timers = {}
    for name in ("numba", "jax", "numpy"):

        def fit(name=name):
            return fastgd.fit(X, y, optimizer=SGD(lr=0.1), epochs=epochs, backend=name)

        check(f"full batch {name}", theta_of(fit()), reference, 1e-10)
        runners[f"fit {name}"] = fit
        timers[name] = _TimedRunEpochs(get_backend(name))
    with ExitStack() as stack:
        for timer in timers.values():
            stack.enter_context(timer)
        times = interleaved(runners, rounds)
    for name, timer in timers.items():  # one run_epochs call per fit (no order is drawn)
        times[f"  of which run_epochs ({name})"] = np.array(timer.seconds)
        times[f"  of which the rest ({name})"] = times[f"fit {name}"] - timer.seconds
    m = report(f"3. full-batch GD, 2,000,000 x 32, {epochs} epochs", times)
    for name in ("numba", "jax", "numpy"):
        ratio(f"fit {name} per epoch / X @ w", m[f"fit {name}"] / epochs / m["numpy X @ w"],
              "<= 1.15")  # fmt: skip
        ratio(f"  fixed cost of a {name} fit / input check",
              m[f"  of which the rest ({name})"] / m["input check (check_X_y)"], "~1")  # fmt: skip
    ratio("input check / X.sum()", m["input check (check_X_y)"] / m["numpy X.sum()"], "~1")


def bare_kernel(rounds: int) -> None:
    n, d, epochs = 2_000_000, 32, 10
    X, y = problem(n, d)
    w = np.zeros(d)
    model = lower_model(Squared(), 0.0, 0.0, True)
    opt = lower_optimizer(SGD(lr=0.1))
    orders = epoch_orders(None, n, epochs, False)
    runners: dict[str, Runner] = {"numpy X @ w": lambda: X @ w}
    reference = None
    for name in ("numba", "jax"):
        backend = get_backend(name)
        data, theta = backend.prepare(X, y[:, None], np.zeros((d + 1, 1)))

        def bare(backend=backend, data=data, theta=theta):
            return backend.loss_grad(data, theta, model)[1]

        def ten_epochs(backend=backend, data=data, theta=theta):
            state = backend.init_state(theta, opt)
            return backend.run_epochs(data, theta, state, orders, n, model, opt)[0]

        grad = np.asarray(bare())
        reference = grad if reference is None else reference
        check(f"loss_grad {name}", grad, reference, 1e-10)
        runners[f"loss_grad {name}"] = bare
        runners[f"run_epochs {name} (10 epochs)"] = ten_epochs
    m = report("4. the bare kernel, 2,000,000 x 32", interleaved(runners, rounds))
    for name in ("numba", "jax"):
        epoch = m[f"run_epochs {name} (10 epochs)"] / epochs
        ratio(f"{name} loss_grad / one epoch in run_epochs ({epoch * 1e3:.2f} ms)",
              m[f"loss_grad {name}"] / epoch, "~1")  # fmt: skip


COLD_START = """
import time
start = time.perf_counter()
import numpy as np
import fastgd
X, y, _ = fastgd.make_regression(256, 8, seed=0)
fastgd.fit(X, y, backend="numba", epochs=2)
print(time.perf_counter() - start)
"""


def cold_start(rounds: int) -> None:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(os.getcwd(), ".cache", "numba"))
    subprocess.run([sys.executable, "-c", COLD_START], env=env, check=True, timeout=600,
                   capture_output=True)  # fills the cache  # fmt: skip
    seconds = [
        float(subprocess.run([sys.executable, "-c", COLD_START], env=env, check=True,
                             timeout=120, capture_output=True, text=True).stdout)
        for _ in range(max(3, rounds // 4))
    ]  # fmt: skip
    print("\n## 5. cold start, warm cache: fresh interpreter, import, small numba fit\n")
    print(f"median {np.median(seconds):.2f} s, min {min(seconds):.2f} s, max {max(seconds):.2f} s "
          "(target < 1 s)")  # fmt: skip


SECTIONS = {"sgd1": per_sample_sgd, "mb64": mini_batch_adam, "full": full_batch,
            "kernel": bare_kernel, "cold": cold_start}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per section (20)")
    parser.add_argument("sections", nargs="*", help=f"some of {', '.join(SECTIONS)} (all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose among {list(SECTIONS)}")
    print(f"# fastgd speed targets ({args.rounds} interleaved rounds per section)")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.rounds)


if __name__ == "__main__":
    main()
