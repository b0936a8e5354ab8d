"""``bench/sparse_text.py --processes``: each child's ratios to scikit-learn, side by side."""

from __future__ import annotations

import os
import subprocess
import sys

from test_shuffled_floor import _table

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sparse_text.py")


def test_processes_print_each_childs_ratios_and_their_median():
    cmd = [sys.executable, SCRIPT, "--rows", "2000", "--rounds", "1", "--processes", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(proc.stdout.replace(">=", "<="))
    ratios = {"binary in order", "binary shuffled", "20 classes"}
    assert ratios <= set(rows)
    assert {"SGDClassifier 20 classes, ms", "fastgd numba 20 classes, ms"} <= set(rows)
    for values in rows.values():
        assert len(values) == 5  # two processes, then the median, min and max
        p1, p2, median, low, high = values
        assert low == min(p1, p2) and high == max(p1, p2) and low <= median <= high
        assert 0.0 < low
