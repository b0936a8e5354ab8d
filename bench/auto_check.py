"""Speed check of ``backend="auto"``: is it as fast as the fastest backend named by hand?

Run from the repository root: ``python bench/auto_check.py`` (about 1.5 min on the 2-core
VM; ``--rounds`` to change). Three problems of ``bench/targets.py`` (float64):

1. per-sample SGD, 200,000 x 100, 5 epochs in order;
2. full-batch GD, 2,000,000 x 32, 10 epochs;
3. Adam, batch 64, shuffled, 200,000 x 100, 5 epochs.

On each, ``fit(backend="auto")`` and ``fit`` with every backend named are timed in
interleaved rounds (``targets.interleaved``: each runner once per round in a rotating
order, each call once the previous runner's threads are idle). Every runner is called
once first (compilation and caches stay out of the timings) and its answer checked:
``auto``'s bit for bit against the backend it chose, named; every backend against numba
(1e-8 relative, 1e-10 for the full batch). The figure is ``auto``'s median over the
fastest named backend's median (target <= 1.15). numpy's per-sample SGD takes 26 s a fit
(README), so it sits out problem 1. The machine is shared: medians move by 10-30 %
between runs; the check is the ratio, measured side by side.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from targets import check, interleaved, problem, report, theta_of

import fastgd
from fastgd.specs import SGD, Adam

TARGET = 1.15

#: name -> (n, d, fit's keyword arguments, backends named, relative tolerance between them)
PROBLEMS = {
    "per-sample SGD, 200,000 x 100, 5 epochs": (
        200_000, 100, dict(optimizer=SGD(lr=1e-3), batch_size=1, epochs=5, shuffle=False),
        ("numba", "jax"), 1e-8,
    ),
    "full-batch GD, 2,000,000 x 32, 10 epochs": (
        2_000_000, 32, dict(optimizer=SGD(lr=0.1), epochs=10),
        ("numba", "jax", "numpy"), 1e-10,
    ),
    "Adam, batch 64, shuffled, 200,000 x 100, 5 epochs": (
        200_000, 100, dict(optimizer=Adam(lr=1e-3), batch_size=64, epochs=5, seed=0),
        ("numba", "jax", "numpy"), 1e-8,
    ),
}


def run(title: str, rounds: int) -> float:
    """Time ``auto`` and the named backends on one problem; return auto / fastest."""
    n, d, kwargs, named, rtol = PROBLEMS[title]
    X, y = problem(n, d)

    def runner(backend: str):
        return lambda: fastgd.fit(X, y, backend=backend, **kwargs)

    runners = {"fit auto": runner("auto")}
    runners.update({f"fit {name}": runner(name) for name in named})
    first = {label: run_() for label, run_ in runners.items()}  # warm-up: compiles, caches
    chosen = first["fit auto"].backend
    reference = theta_of(first[f"fit {named[0]}"])
    for name in named[1:]:
        check(f"{name} vs {named[0]}", theta_of(first[f"fit {name}"]), reference, rtol)
    if not np.array_equal(theta_of(first["fit auto"]), theta_of(first[f"fit {chosen}"])):
        raise AssertionError(f"auto ({chosen}) differs from fit(backend={chosen!r})")
    medians = report(f"{title} (auto picks {chosen})", interleaved(runners, rounds))
    fastest = min(named, key=lambda name: medians[f"fit {name}"])
    value = medians["fit auto"] / medians[f"fit {fastest}"]
    verdict = "met" if value <= TARGET else "MISSED"
    print(f"- auto ({chosen}) / fastest named ({fastest}): {value:.2f} "
          f"(target <= {TARGET}: {verdict})")  # fmt: skip
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per problem (10)")
    args = parser.parse_args(argv)
    print(f"# backend='auto' against each backend named ({args.rounds} interleaved rounds)")
    ratios = {title: run(title, args.rounds) for title in PROBLEMS}
    print("\n## summary: auto / fastest named backend (target <= 1.15)\n")
    for title, value in ratios.items():
        print(f"  {title:52s} {value:5.2f}")
    return 0 if all(value <= TARGET for value in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
