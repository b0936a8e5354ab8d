"""``bench/shuffled_floor.py --processes``: each child's shuffled ratios, side by side."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shuffled_floor.py")


def test_processes_print_each_childs_ratios_and_their_median():
    cmd = [sys.executable, SCRIPT, "--n", "3000", "--d", "8", "--rounds", "2", "--epochs",
           "2", "--processes", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("  ")[0]: line.split("  ", 1)[1].split("<=")[0].split()
            for line in proc.stdout.splitlines() if "  " in line}  # fmt: skip
    for name in ("per-sample SGD", "per-sample SGD run_epochs", "Adam batch 64",
                 "Adam batch 64 run_epochs"):  # fmt: skip
        values = [float(v) for v in rows[name]]
        assert len(values) == 5  # two processes, then the median, min and max
        p1, p2, median, low, high = values
        assert low == min(p1, p2) and high == max(p1, p2) and low <= median <= high
        assert 0.0 < low
