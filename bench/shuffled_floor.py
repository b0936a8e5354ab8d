"""How close numba's epochs over shuffled rows come to the machine's floor.

Run from the repository root: ``python bench/shuffled_floor.py`` (``--rounds``,
``--epochs``, ``--n``, ``--d``; ``--sweep`` adds the per-sample kernel at several prefetch
distances; ``--processes N`` runs it in N processes one after the other and prints each
one's shuffled ratios, which move between processes more than within one). The floor of
any epoch over shuffled rows is a numba loop that does nothing
but read X's rows in the epoch's order: a vectorised sum of each row, with every cache
line of a row prefetched ``FLOOR_AHEAD`` samples ahead by the backend's own hint
(:func:`fastgd.backends.numba.rows._prefetch_row`). Beside it, ``fastgd.fit(...,
backend="numba")`` on the same 200,000 x 100 float64 rows (squared loss, constant lr, no
penalty):

- per-sample SGD (batch 1, the SGD optimizer), shuffled and in order;
- Adam with batch 64, shuffled and in order;

and the floor in order. All runners run interleaved in one process: round r runs each
once, in a rotated order, after this process's threads are idle, so that a busy spell of
the shared machine lands on all of them alike. Every runner is called once before the
rounds (compilation) and its answer checked: the floor's sums against numpy's, each fit's
parameters finite and equal, bit for bit, to a second fit's. The table gives the median
and the best of the rounds with the interquartile range; the ratios are fit / floor of
the same order, of medians and of bests. The load average is printed beside them: on a
machine shared with other work, the figures are noisy and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from numba import njit
from targets import print_process_table, run_processes

import fastgd
from fastgd.backends import get_backend
from fastgd.backends.numba.rows import _prefetch_row
from fastgd.compare import _quiesce
from fastgd.data import epoch_orders
from fastgd.specs import SGD, Adam

#: The floor loop prefetches every cache line of a row this many samples ahead.
FLOOR_AHEAD = 8
#: The issue's targets: fit / floor of the same order, medians.
TARGETS = {"per-sample SGD": 1.6, "Adam batch 64": 1.5}
PROCESS_TARGETS = {name: f"<= {target}" for name, target in TARGETS.items()}

Runner = Callable[[], object]


@njit(nogil=True, fastmath=True)
def read_rows(X, orders, ahead):
    """Sum every row of X in each epoch's order (``orders`` (E, n)), prefetching each row
    ``ahead`` samples before it is read: the least an epoch over those rows costs.

    Returns the (d,) float64 sum over all epochs (E times the column sums)."""
    n, d = X.shape
    acc = np.zeros(d)
    for e in range(orders.shape[0]):
        order = orders[e]
        for k in range(n):
            if k + ahead < n:
                _prefetch_row(X, order[k + ahead])
            i = order[k]
            for j in range(d):
                acc[j] += X[i, j]
    return acc


class _KernelClock:
    """Records the seconds spent in the numba backend's ``run_epochs`` (the compiled
    epochs, without the checks of X and the drawing of the orders that ``fit`` does
    first) while it is installed."""

    def __init__(self) -> None:
        self.backend = get_backend("numba")
        self.inner = self.backend.run_epochs
        self.seconds = 0.0

    def __enter__(self) -> _KernelClock:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = self.inner(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            return out

        self.backend.run_epochs = timed
        return self

    def __exit__(self, *exc) -> None:
        self.backend.run_epochs = self.inner


def interleaved(
    runners: dict[str, Runner], rounds: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seconds of each runner in each of ``rounds`` rounds (every runner once per round,
    the order rotated from round to round), of the ``run_epochs`` inside each fit, and
    the CPU seconds of this process during each call (which a busy machine's other
    work, taking the core away, does not add to)."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    kernel: dict[str, list[float]] = {name: [] for name in names}
    with _KernelClock() as clock:
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                _quiesce()
                clock.seconds = 0.0
                start_cpu = time.process_time()
                start = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                kernel[name].append(clock.seconds)
    fits = tuple(TARGETS)
    return (
        {name: np.array(t) for name, t in times.items()},
        {name: np.array(t) for name, t in kernel.items() if name.startswith(fits)},
        {name: np.array(t) for name, t in cpu.items()},
    )


def _theta(res: fastgd.FitResult) -> np.ndarray:
    return np.append(res.coef, res.intercept)


def _checked_fit(name: str, fit: Runner) -> Runner:
    """``fit`` after checking that its parameters are finite and that two fits agree bit
    for bit (the second call also compiles nothing: the timed calls don't either)."""
    first, second = _theta(fit()), _theta(fit())
    if not np.all(np.isfinite(first)):
        raise AssertionError(f"{name}: parameters not finite")
    if not np.array_equal(first, second):
        raise AssertionError(f"{name}: two fits differ")
    return fit


def _checked_floor(name: str, X: np.ndarray, orders: np.ndarray, ahead: int) -> Runner:
    """The floor loop on ``orders``, after checking its sums against numpy's."""
    expected = orders.shape[0] * X.sum(axis=0)
    got = read_rows(X, orders, ahead)
    err = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
    if not err <= 1e-10:
        raise AssertionError(f"{name}: sums off by {err:.1e}")
    return lambda: read_rows(X, orders, ahead)


def runners(n: int, d: int, epochs: int, sweep: tuple[int, ...]) -> dict[str, Runner]:
    """Every runner, checked, keyed by its name in the table."""
    X, y, _ = fastgd.make_regression(n, d, dtype=np.float64, seed=0)
    out: dict[str, Runner] = {}
    for shuffle in (True, False):
        tag = "shuffled" if shuffle else "in order"
        orders = np.ascontiguousarray(epoch_orders(np.random.default_rng(1), n, epochs, shuffle))
        out[f"floor {tag}"] = _checked_floor(f"floor {tag}", X, orders, FLOOR_AHEAD)
        def sgd(shuffle: bool = shuffle) -> fastgd.FitResult:
            return fastgd.fit(X, y, optimizer=SGD(lr=1e-4), batch_size=1, epochs=epochs,
                              shuffle=shuffle, seed=0, backend="numba")  # fmt: skip

        def adam(shuffle: bool = shuffle) -> fastgd.FitResult:
            return fastgd.fit(X, y, optimizer=Adam(lr=1e-3), batch_size=64, epochs=epochs,
                              shuffle=shuffle, seed=0, backend="numba")  # fmt: skip

        out[f"per-sample SGD {tag}"] = _checked_fit(f"per-sample SGD {tag}", sgd)
        out[f"Adam batch 64 {tag}"] = _checked_fit(f"Adam batch 64 {tag}", adam)
    if sweep:
        out.update(_sweep_runners(X, y, epochs, sweep))
    return out


def _sweep_runners(X, y, epochs: int, sweep: tuple[int, ...]) -> dict[str, Runner]:
    """The per-sample kernel alone (plain SGD, squared loss, constant lr, shuffled) at
    each prefetch distance in ``sweep`` (samples ahead), each checked equal to the first."""
    from fastgd.backends.numba.sgd import _sgd_epochs_plain
    from fastgd.specs import LOSS_SQUARED, SCHED_CONSTANT

    loss_code = LOSS_SQUARED  # a closure constant: a literal, as fastgd's entry points pass

    @njit
    def plain(X, y, weight, theta, slots, orders, schedule_params, losses, ahead):
        return _sgd_epochs_plain(
            X, y, weight, theta, slots, 0, orders, loss_code, 0.0, np.inf, True,
            SCHED_CONSTANT, schedule_params, losses, ahead,
        )

    n, d = X.shape
    orders = np.ascontiguousarray(epoch_orders(np.random.default_rng(1), n, epochs, True))
    weight = np.empty(0)
    schedule = np.array([1e-4, 0.0, 0.0, 0.0])

    def kernel(ahead: int) -> np.ndarray:
        theta = np.zeros(d + 1)
        plain(X, y, weight, theta, np.zeros((3, d + 1)), orders, schedule, np.empty(epochs),
              ahead)  # fmt: skip
        return theta

    reference = kernel(sweep[0])
    out = {}
    for ahead in sweep:
        if not np.array_equal(kernel(ahead), reference):
            raise AssertionError(f"per-sample kernel {ahead} ahead differs")
        out[f"SGD kernel {ahead:2d} ahead"] = lambda ahead=ahead: kernel(ahead)
    return out


def report(
    times: dict[str, np.ndarray], kernel: dict[str, np.ndarray], cpu: dict[str, np.ndarray]
) -> None:
    """The table (ms per call of ``epochs`` epochs) and the ratios fit / floor, then the
    same for the ``run_epochs`` inside each fit."""
    print(f"{'runner':40s} {'median ms':>10s} {'best ms':>9s} {'IQR ms':>8s}")
    rows = dict(times)
    rows.update({f"{name} (run_epochs)": t for name, t in kernel.items()})
    for name, t in rows.items():
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        print(f"{name:40s} {med * 1e3:10.1f} {t.min() * 1e3:9.1f} {(q3 - q1) * 1e3:8.1f}")
    print()
    med = {name: np.median(t) for name, t in times.items()}
    best = {name: t.min() for name, t in times.items()}
    print(f"{'ratio':50s} {'median':>7s} {'best':>6s} {'target':>7s}")
    for tag in ("shuffled", "in order"):
        floor = f"floor {tag}"
        for what, target in TARGETS.items():
            name = f"{what} {tag}"
            goal = f"<= {target}" if tag == "shuffled" else ""
            print(f"{name + ' / ' + floor:50s} {med[name] / med[floor]:7.2f} "
                  f"{best[name] / best[floor]:6.2f} {goal:>7s}")  # fmt: skip
        for what in TARGETS:
            t = kernel[f"{what} {tag}"]
            print(f"{what + ' ' + tag + ' run_epochs / ' + floor:50s} "
                  f"{np.median(t) / med[floor]:7.2f} {t.min() / best[floor]:6.2f}")  # fmt: skip
    print("\nratio within each round (the fit and the floor timed a few seconds apart), "
          "median [25th-75th percentile] over the rounds:")  # fmt: skip
    for tag in ("shuffled", "in order"):
        for what in TARGETS:
            name, floor = f"{what} {tag}", f"floor {tag}"
            r = times[name] / times[floor]
            q1, q2, q3 = np.percentile(r, [25, 50, 75])
            print(f"{name + ' / ' + floor:50s} {q2:7.2f} [{q1:.2f}-{q3:.2f}]")
    cmed = {name: np.median(t) for name, t in cpu.items()}
    print("\nCPU time of this process (not counting the time the core was taken away):")
    for tag in ("shuffled", "in order"):
        for what in TARGETS:
            name, floor = f"{what} {tag}", f"floor {tag}"
            print(f"{name + ' / ' + floor + ', CPU':50s} {cmed[name] / cmed[floor]:7.2f} "
                  f"{cpu[name].min() / cpu[floor].min():6.2f}")  # fmt: skip
    for name in times:
        if name.startswith("SGD kernel"):
            print(f"{name + ' / floor shuffled':50s} {med[name] / med['floor shuffled']:7.2f} "
                  f"{best[name] / best['floor shuffled']:6.2f}")  # fmt: skip
    print(f"{'floor shuffled / floor in order':50s} "
          f"{med['floor shuffled'] / med['floor in order']:7.2f} "
          f"{best['floor shuffled'] / best['floor in order']:6.2f}")  # fmt: skip


def shuffled_ratios(
    times: dict[str, np.ndarray], kernel: dict[str, np.ndarray]
) -> dict[str, float]:
    """fit / floor and run_epochs / floor over shuffled rows (ratios of medians)."""
    floor = np.median(times["floor shuffled"])
    out = {}
    for what in TARGETS:
        out[what] = float(np.median(times[f"{what} shuffled"]) / floor)
        out[f"{what} run_epochs"] = float(np.median(kernel[f"{what} shuffled"]) / floor)
    return out


def across_processes(args: argparse.Namespace) -> None:
    """Run this script ``args.processes`` times, one process after the other, and print
    each process's shuffled ratios and their median, min and max: the ratios move between
    processes (where X lands in memory) more than within one."""
    child = ["--rounds", str(args.rounds), "--epochs", str(args.epochs), "--n", str(args.n),
             "--d", str(args.d)]  # fmt: skip
    runs = run_processes(__file__, child, args.processes)
    print(f"# shuffled rows, fit / floor (ratio of medians, {args.rounds} rounds each), "
          f"{args.processes} processes one after the other\n")  # fmt: skip
    print_process_table(runs, PROCESS_TARGETS)
    print(f"\nload average (1 min) at the end {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count() or 1} cores")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--sweep", type=int, nargs="*", default=None,
                        help="prefetch distances (samples) of the per-sample kernel alone")
    parser.add_argument("--processes", type=int, default=1,
                        help="run the rounds in this many processes, one after the other, "
                             "and print the shuffled ratios of each")  # fmt: skip
    parser.add_argument("--ratios-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes > 1:
        across_processes(args)
        return
    sweep = tuple(args.sweep) if args.sweep else ()
    load_before = os.getloadavg()
    times, kernel, cpu = interleaved(runners(args.n, args.d, args.epochs, sweep), args.rounds)
    load_after = os.getloadavg()
    print(f"# shuffled rows against the floor: {args.n:,} x {args.d} float64, "
          f"{args.epochs} epochs per call, {args.rounds} rounds interleaved, "
          f"floor prefetch {FLOOR_AHEAD} samples ahead\n")  # fmt: skip
    report(times, kernel, cpu)
    if args.ratios_json:
        import json

        with open(args.ratios_json, "w") as f:
            json.dump(shuffled_ratios(times, kernel), f)
    cores = os.cpu_count() or 1
    load = max(load_before[0], load_after[0])
    print(f"\nload average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
          f"{cores} cores")  # fmt: skip
    if load > 0.5 * cores:
        print("the machine was shared (load above half its cores): the times are noisy, "
              "the ratios of runners interleaved in one process are what to read")


if __name__ == "__main__":
    main()
