"""``bench/shuffled_floor.py --processes``: each child's shuffled ratios, side by side."""

from __future__ import annotations

import os
import subprocess
import sys

from targets import print_process_table

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shuffled_floor.py")


def _table(stdout: str) -> dict[str, list[float]]:
    """The process table's rows: name -> its figures (the target column left out)."""
    rows = [line for line in stdout.splitlines() if "  " in line and not line.startswith(" ")]
    return {row.split("  ")[0]: [float(v) for v in row.split("  ", 1)[1].split("<=")[0].split()]
            for row in rows}  # fmt: skip


def test_the_table_keeps_large_ratios_apart(capsys):
    """Ratios of 100 or more (tiny problems on a busy machine) stay separate figures."""
    print_process_table([{"per-sample SGD": 72.45}, {"per-sample SGD": 116.83},
                         {"per-sample SGD": 1234.5}], {"per-sample SGD": "<= 1.6"})  # fmt: skip
    assert _table(capsys.readouterr().out)["per-sample SGD"] == [
        72.45, 116.83, 1234.5, 116.83, 72.45, 1234.5]


def test_processes_print_each_childs_ratios_and_their_median():
    cmd = [sys.executable, SCRIPT, "--n", "3000", "--d", "8", "--rounds", "2", "--epochs",
           "2", "--processes", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(proc.stdout)
    for name in ("per-sample SGD", "per-sample SGD run_epochs", "Adam batch 64",
                 "Adam batch 64 run_epochs"):  # fmt: skip
        values = rows[name]
        assert len(values) == 5  # two processes, then the median, min and max
        p1, p2, median, low, high = values
        assert low == min(p1, p2) and high == max(p1, p2) and low <= median <= high
        assert 0.0 < low
