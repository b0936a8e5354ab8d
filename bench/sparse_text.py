"""Sparse text-like X: fastgd against ``SGDClassifier`` on the same CSR matrix.

Run from the repository root: ``python bench/sparse_text.py`` (a few minutes;
``--rounds`` sets the timed rounds, ``--sweep`` also times the numba loop's prefetch
distances). The problem, generated here: 500,000 x 2^20 float64 CSR, about 25 stored
values per row (Poisson lengths), column frequencies by a power law (rank r drawn with
probability ∝ 1/(r + 10)), columns scattered by a fixed permutation (as hashed
features), positive values, rows l2-normalised; labels from a random linear model.

Sections:

1. binary hinge + l2 (alpha 1e-4) + ``optimal``, per-sample, 5 epochs: fastgd numba
   (``fit(batch_size=1, intercept_decay=0.01, relative_weights=False, max_dloss=1e12)``,
   scikit-learn's sparse settings) against ``SGDClassifier`` in order and shuffled (its
   own row order through ``SklearnShuffle``);
2. 20 classes one-vs-rest, in order, 2 epochs: fastgd numba, one pass over the 20
   outputs, against ``SGDClassifier(n_jobs=1)``;
3. numpy and jax (and numba) on the binary problem: one epoch of mini-batch SGD (batch
   1024) and one full-batch step, the update being dense (O(d) per update);
4. ``online``: ``GDClassifier(backend="numba").partial_fit`` against
   ``SGDClassifier.partial_fit``, 20 calls of 1,000 rows each (out-of-core learning on
   hashed features, where the per-call O(d) work counts).

Every runner is called once before the rounds (compilation stays out) and checked
against scikit-learn's coefficients (1e-8 relative) or, for section 3, against the
numpy backend's, so a fast wrong answer fails the script. The runners are timed
interleaved (``bench/targets.py``'s ``interleaved``); a ratio is a ratio of medians. The
machine may be shared: read the medians and the spread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import interleaved, print_process_table, report, run_processes  # noqa: E402

import fastgd  # noqa: E402
from fastgd.sklearn_shuffle import SklearnShuffle, binary_seed  # noqa: E402
from fastgd.specs import optimal  # noqa: E402

N, D, PER_ROW, EPOCHS, ALPHA, SEED = 500_000, 2**20, 25, 5, 1e-4, 0
#: The issue's targets: scikit-learn's time / fastgd numba's, medians.
TARGETS = {"binary in order": ">= 1.4", "binary shuffled": ">= 1.2", "20 classes": ">= 3"}


def text_like(n: int = N, d: int = D, per_row: int = PER_ROW, seed: int = 0) -> sp.csr_matrix:
    """The text-like CSR matrix described in the module docstring (float64, int32)."""
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.poisson(per_row, n))
    ranks = np.arange(d, dtype=np.float64)
    p = 1.0 / (ranks + 10.0)
    cdf = np.cumsum(p / p.sum())
    columns = np.searchsorted(cdf, rng.random(int(lengths.sum())))
    columns = np.minimum(columns, d - 1)
    columns = rng.permutation(d)[columns].astype(np.int32)  # scattered, as hashed features
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    values = rng.exponential(1.0, columns.shape[0]) + 0.1
    X = sp.csr_matrix((values, columns, indptr), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X.data /= np.repeat(norms, np.diff(X.indptr))
    return X


def labels(X: sp.csr_matrix, classes: int, seed: int = 1) -> np.ndarray:
    """Labels of a random linear model: its sign (2 classes) or its argmax."""
    rng = np.random.default_rng(seed)
    if classes == 2:
        margin = X @ rng.standard_normal(X.shape[1])
        return (margin > np.median(margin)).astype(np.int64)
    return np.argmax(X @ rng.standard_normal((X.shape[1], classes)), axis=1)


def sklearn_runner(X, y, shuffle: bool, epochs: int):
    from sklearn.linear_model import SGDClassifier

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached
            peer = SGDClassifier(loss="hinge", penalty="l2", alpha=ALPHA, max_iter=epochs,
                                 tol=None, shuffle=shuffle, random_state=SEED, n_jobs=1)
            peer.fit(X, y)  # fmt: skip
        return peer.coef_.T, peer.intercept_  # stacked when checked, outside the timing

    return run


def fastgd_runner(X, y, shuffle: bool, epochs: int, backend: str = "numba", **extra):
    targets = y if y.max() <= 1 else np.eye(int(y.max()) + 1)[y]  # one-vs-rest: one-hot
    seed = SklearnShuffle(binary_seed(SEED)) if shuffle else None

    def run():
        res = fastgd.fit(X, targets, loss="hinge", penalty="l2", alpha=ALPHA,
                         lr=optimal(ALPHA), batch_size=1, shuffle=shuffle, seed=seed,
                         epochs=epochs, max_dloss=1e12, relative_weights=False,
                         intercept_decay=0.01, backend=backend, **extra)  # fmt: skip
        return res.coef.reshape(X.shape[1], -1), np.atleast_1d(res.intercept)

    return run


def batch_runner(X, y, backend: str, batch_size: int | None):
    def run():
        res = fastgd.fit(X, y, loss="hinge", penalty="l2", alpha=ALPHA, optimizer="sgd",
                         lr=0.5, batch_size=batch_size, epochs=1, shuffle=False,
                         backend=backend)  # fmt: skip
        return res.coef.reshape(X.shape[1], -1), np.atleast_1d(res.intercept)

    return run


def stacked(answer) -> np.ndarray:
    """A runner's (coef (d, K), intercept (K,)) as one (d + 1, K) matrix. The runners
    return the pair as the fit left it: copying 2^20 x 20 values into one matrix took
    70 ms, which is no part of either library's fit."""
    coef, intercept = answer
    return np.r_[np.asarray(coef).reshape(coef.shape[0], -1), np.reshape(intercept, (1, -1))]


def check(what: str, result, reference, rtol: float = 1e-8) -> None:
    result, reference = stacked(result), stacked(reference)
    err = float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))
    print(f"- {what}: max relative difference {err:.1e}")
    if not err <= rtol:
        raise AssertionError(f"{what}: relative difference {err:.2e} > {rtol:.0e}")


def timed(runners: dict, expected: dict, rounds: int, title: str) -> dict[str, float]:
    for name, run in runners.items():
        if name in expected:
            check(name, run(), expected[name])
    return report(title, interleaved(runners, rounds))


def binary(X, y, rounds: int) -> dict[str, float]:
    """Section 1; returns scikit-learn's time / fastgd's in order and shuffled, and both
    medians (ms)."""
    runners, expected = {}, {}
    for tag, shuffle in (("in order", False), ("shuffled", True)):
        peer = sklearn_runner(X, y, shuffle, EPOCHS)
        reference = peer()
        runners[f"SGDClassifier, {tag}"] = peer
        runners[f"fastgd numba, {tag}"] = fastgd_runner(X, y, shuffle, EPOCHS)
        expected[f"fastgd numba, {tag}"] = reference
    m = timed(runners, expected, rounds,
              f"binary hinge + l2, per-sample, {EPOCHS} epochs: ms, {rounds} rounds")  # fmt: skip
    ratios = {}
    for tag in ("in order", "shuffled"):
        value = m[f"SGDClassifier, {tag}"] / m[f"fastgd numba, {tag}"]
        ratios[f"binary {tag}"] = float(value)
        ratios[f"SGDClassifier {tag}, ms"] = float(m[f"SGDClassifier, {tag}"] * 1e3)
        ratios[f"fastgd numba {tag}, ms"] = float(m[f"fastgd numba, {tag}"] * 1e3)
        print(f"- SGDClassifier / fastgd numba, {tag}: {value:.2f} "
              f"(target {TARGETS['binary ' + tag]})")  # fmt: skip
    return ratios


def twenty_classes(X, rounds: int, epochs: int = 2) -> dict[str, float]:
    """Section 2; returns scikit-learn's time / fastgd's, and both medians (ms)."""
    y = labels(X, 20)
    peer = sklearn_runner(X, y, False, epochs)
    runners = {"SGDClassifier(n_jobs=1), in order": peer,
               "fastgd numba K=20, in order": fastgd_runner(X, y, False, epochs)}  # fmt: skip
    expected = {"fastgd numba K=20, in order": peer()}
    title = f"20 classes one-vs-rest, per-sample, {epochs} epochs: ms, {rounds} rounds"
    m = timed(runners, expected, rounds, title)
    value = m["SGDClassifier(n_jobs=1), in order"] / m["fastgd numba K=20, in order"]
    print(f"- SGDClassifier(n_jobs=1) / fastgd numba, 20 classes: {value:.2f} (target >= 3)")
    return {
        "20 classes": float(value),
        "SGDClassifier 20 classes, ms": float(m["SGDClassifier(n_jobs=1), in order"] * 1e3),
        "fastgd numba 20 classes, ms": float(m["fastgd numba K=20, in order"] * 1e3),
    }


def online(X, y, rounds: int, rows: int = 20_000, chunk: int = 1_000) -> None:
    """Out-of-core learning as scikit-learn's users run it: ``partial_fit`` on chunks of
    ``chunk`` rows (hashed features: d = 2^20), the first ``rows`` rows of X; binary hinge,
    the estimators' defaults. The per-call O(d) work (the weights' copies, norms and
    checks) weighs here, not the rows."""
    from sklearn.linear_model import SGDClassifier

    from fastgd import GDClassifier

    chunks = [(X[s : s + chunk], y[s : s + chunk]) for s in range(0, rows, chunk)]
    classes = np.array([0, 1])

    def runner(make):
        def run():
            est = make()
            for Xc, yc in chunks:
                est.partial_fit(Xc, yc, classes=classes)
            return est.coef_.T, est.intercept_

        return run

    peer = runner(lambda: SGDClassifier(random_state=SEED))
    runners = {"SGDClassifier partial_fit": peer,
               "GDClassifier numba partial_fit": runner(
                   lambda: GDClassifier(backend="numba", random_state=SEED))}  # fmt: skip
    title = (f"partial_fit, {len(chunks)} calls of {chunk:,} rows (d = {X.shape[1]:,}): ms for "
             f"all calls, {rounds} rounds")  # fmt: skip
    m = timed(runners, {"GDClassifier numba partial_fit": peer()}, rounds, title)
    value = m["SGDClassifier partial_fit"] / m["GDClassifier numba partial_fit"]
    print(f"- SGDClassifier / GDClassifier numba, partial_fit: {value:.2f} "
          f"({m['GDClassifier numba partial_fit'] / len(chunks) * 1e3:.2f} ms a call)")  # fmt: skip


def batches(X, y, rounds: int) -> None:
    runners, expected = {}, {}
    for batch, tag in ((1024, "mini-batch 1024, 1 epoch"), (None, "full batch, 1 step")):
        reference = None
        for backend in ("numpy", "numba", "jax"):
            run = batch_runner(X, y, backend, batch)
            name = f"{backend}, {tag}"
            runners[name] = run
            if backend == "numpy":
                reference = run()
            else:
                expected[name] = reference
    timed(runners, expected, rounds, f"dense updates on sparse X: ms, {rounds} rounds")


def sweep(X, y, rounds: int) -> None:
    """The numba loop's prefetch distance (rows ahead; the indices twice as far)."""
    from fastgd.backends.numba import sparse_sgd

    default = sparse_sgd._SPARSE_PREFETCH_ROWS
    runners = {}
    for ahead in (0, 1, 2, 4, 8, 16):
        for tag, shuffle in (("in order", False), ("shuffled", True)):
            fit = fastgd_runner(X, y, shuffle, EPOCHS)

            def run(ahead=ahead, fit=fit):
                sparse_sgd._SPARSE_PREFETCH_ROWS = ahead
                try:
                    return fit()
                finally:
                    sparse_sgd._SPARSE_PREFETCH_ROWS = default

            runners[f"ahead {ahead}, {tag}"] = run
    report(f"prefetch distance sweep: ms, {rounds} rounds", interleaved(runners, rounds))


def across_processes(args: argparse.Namespace) -> None:
    """Sections 1 and 2 in ``args.processes`` processes, one after the other: each
    process's ratios, then their median, min and max. scikit-learn's memory-bound loops
    move from one process to the next more than within one."""
    sections = ",".join(s for s in args.sections.split(",") if s in ("binary", "classes"))
    child = ["--rounds", str(args.rounds), "--rows", str(args.rows), "--sections", sections]
    runs = run_processes(__file__, child, args.processes)
    print(f"# scikit-learn / fastgd numba (ratios of medians, {args.rounds} rounds each), "
          f"{args.processes} processes one after the other\n")  # fmt: skip
    print_process_table(runs, TARGETS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sections", default="binary,classes,batches",
                        help="comma-separated: binary, classes, online, batches, sweep")
    parser.add_argument("--rows", type=int, default=N)
    parser.add_argument("--processes", type=int, default=1,
                        help="run the binary and classes sections in this many processes, "
                             "one after the other, and print each one's ratios")  # fmt: skip
    parser.add_argument("--ratios-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes > 1:
        across_processes(args)
        return
    start = time.perf_counter()
    X = text_like(args.rows)
    y = labels(X, 2)
    made = time.perf_counter() - start
    print(f"# text-like CSR {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} stored values "
          f"({X.nnz / X.shape[0]:.1f} per row), made in {made:.1f} s")  # fmt: skip
    sections = args.sections.split(",")
    ratios = {}
    if "binary" in sections:
        ratios.update(binary(X, y, args.rounds))
    if "classes" in sections:
        ratios.update(twenty_classes(X, max(2, args.rounds // 3)))
    if args.ratios_json:
        with open(args.ratios_json, "w") as f:
            json.dump(ratios, f)
    if "online" in sections:
        online(X, y, args.rounds)
    if "batches" in sections:
        batches(X, y, max(2, args.rounds // 2))
    if "sweep" in sections:
        sweep(X, y, args.rounds)


if __name__ == "__main__":
    main()
