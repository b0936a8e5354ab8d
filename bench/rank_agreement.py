"""Do two ``fastgd compare`` reports rank the runners of every cell the same way?

Usage (from the repository root)::

    fastgd compare --quick --out results/run1
    fastgd compare --quick --out results/run2
    python bench/rank_agreement.py results/run1/compare.json results/run2/compare.json

For every cell (problem, shape, dtype) and every pair of runners (backend and device)
whose median times differ by more than ``--margin`` (20%) in either report, the faster
runner must be the same in both. Prints each pair compared and exits with status 1 when
any pair is ranked differently.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys


def medians(path: str) -> dict[tuple, dict[tuple, float]]:
    """Median seconds per epoch of each runner, grouped by cell."""
    with open(path) as f:
        report = json.load(f)
    cells: dict[tuple, dict[tuple, float]] = {}
    for row in report["results"]:
        if "error" in row:
            continue
        cell = (row["problem"], f"{row['n']}x{row['d']}", row["dtype"])
        cells.setdefault(cell, {})[(row["backend"], row["device"])] = row["time_per_epoch_s"]
    return cells


def disagreements(first: dict, second: dict, margin: float) -> tuple[int, list[str]]:
    """Pairs compared, and a line for each pair ranked differently."""
    compared, lines = 0, []
    for cell in sorted(first.keys() & second.keys()):
        a, b = first[cell], second[cell]
        for x, y in itertools.combinations(sorted(a.keys() & b.keys()), 2):
            ratio_a, ratio_b = a[x] / a[y], b[x] / b[y]
            if max(ratio_a, 1 / ratio_a, ratio_b, 1 / ratio_b) <= 1 + margin:
                continue
            compared += 1
            if (ratio_a < 1) != (ratio_b < 1):
                lines.append(
                    f"{' '.join(cell)}: {'/'.join(x)} vs {'/'.join(y)}: "
                    f"ratio {ratio_a:.2f} in the first report, {ratio_b:.2f} in the second"
                )
    return compared, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--margin", type=float, default=0.2)
    args = parser.parse_args(argv)
    compared, lines = disagreements(medians(args.first), medians(args.second), args.margin)
    for line in lines:
        print(line)
    print(f"{compared} pairs differ by more than {args.margin:.0%}; "
          f"{len(lines)} ranked differently")  # fmt: skip
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
