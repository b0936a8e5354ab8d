"""Do two ``fastgd compare`` reports rank the runners of every cell the same way?

Usage (from the repository root)::

    fastgd compare --quick --out results/run1
    fastgd compare --quick --out results/run2
    python bench/rank_agreement.py results/run1/compare.json results/run2/compare.json

Runners are fastgd's backends on each device and the peers (scikit-learn, optax,
PyTorch), keyed by (backend, device). Two measures are ranked:

- the median time per epoch, within every cell (problem, shape, dtype);
- the time to within 1e-3 of the best objective, within every family's curve data set
  (runners of all the family's problems together), where both reports have it.

For every pair of runners whose figures differ by more than ``--margin`` (20%) in either
report, the faster runner must be the same in both. Prints each pair ranked differently
and a count per measure; exits with status 1 when any pair is ranked differently.

``--stat min`` ranks the fastest fit of each runner instead of the median (on a machine
shared with other work, noise only ever adds time); ``--stable-only`` leaves out the
time-per-epoch figures ``fastgd compare`` marks unstable (interquartile range above 20%
of the median, "~" in its table) in either report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

#: The measures ranked: name, the result row's field, how a row's group is named.
MEASURES = (
    ("time/epoch", "time_per_epoch_s", lambda r: (r["problem"], f"{r['n']}x{r['d']}",
                                                  r["dtype"])),
    ("time to 1e-3", "time_to_target_s", lambda r: (r.get("family", r["problem"]),
                                                    f"{r['n']}x{r['d']}", r["dtype"])),
)


def medians(path: str, field: str = "time_per_epoch_s", group=MEASURES[0][2],
            stable_only: bool = False) -> dict:
    """``field`` of each runner, grouped: ``{group: {runner: seconds}}``.

    A runner is (backend, device), with the problem added for the groups that hold
    several problems (the families' curves); rows without the field (failed, or not on
    a curve, or that never got within 1e-3) are left out, and with ``stable_only`` the
    rows marked unstable.
    """
    with open(path) as f:
        report = json.load(f)
    cells: dict[tuple, dict[tuple, float]] = {}
    for row in report["results"]:
        if "error" in row or row.get(field) is None:
            continue
        if stable_only and row.get("unstable"):
            continue
        runner = (row["backend"], row["device"])
        if field == "time_to_target_s":
            runner = (row["problem"], *runner)
        cells.setdefault(group(row), {})[runner] = row[field]
    return cells


def disagreements(first: dict, second: dict, margin: float) -> tuple[int, list[str]]:
    """Pairs compared, and a line for each pair ranked differently."""
    compared, lines = 0, []
    for cell in sorted(first.keys() & second.keys()):
        a, b = first[cell], second[cell]
        for x, y in itertools.combinations(sorted(a.keys() & b.keys()), 2):
            if min(a[x], a[y], b[x], b[y]) <= 0:
                continue
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
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="rank each runner's median or fastest time per epoch")
    parser.add_argument("--stable-only", action="store_true",
                        help="leave out the time-per-epoch figures marked unstable")
    args = parser.parse_args(argv)
    differ = 0
    for name, field, group in MEASURES:
        if field == "time_per_epoch_s" and args.stat == "min":
            name, field = "min time/epoch", "min_per_epoch_s"
        stable = args.stable_only and field != "time_to_target_s"
        compared, lines = disagreements(medians(args.first, field, group, stable),
                                        medians(args.second, field, group, stable),
                                        args.margin)
        for line in lines:
            print(f"{name}: {line}")
        print(f"{name}: {compared} pairs differ by more than {args.margin:.0%}; "
              f"{len(lines)} ranked differently")  # fmt: skip
        differ += len(lines)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
