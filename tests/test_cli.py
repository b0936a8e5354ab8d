"""The ``fastgd`` command: ``info``, ``compare`` (table, JSON, PNG) and its argument errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastgd
from fastgd.cli import main

TINY = ["compare", "--quick", "--no-progress", "--repeat", "1"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *argv: str) -> str:
    """Run argv, expect argparse's usage error (exit status 2); return stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_info_lists_versions_backends_and_float64(capsys):
    code, out, _ = _run(capsys, "info")
    assert code == 0
    assert f"fastgd {fastgd.__version__}" in out
    assert f"numpy         {np.__version__}" in out
    for name in fastgd.available_backends():
        assert f"  {name:6s} yes" in out, f"float64 support of {name} not reported"
    assert "numba cache dir:" in out
    assert "CPUs usable by this process:" in out
    assert 'backend="auto" picks' in out  # one line per typical problem: tests/test_auto.py


def test_python_dash_m_runs_the_same_command():
    proc = subprocess.run(
        [sys.executable, "-m", "fastgd", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastgd {fastgd.__version__}"


def test_compare_writes_sane_json_and_png(capsys, tmp_path):
    code, out, err = _run(
        capsys, *TINY, "--backends", "numpy", "--peers", "none", "--problems", "squared",
        "--sizes", "128x4,1024x4", "--dtype", "both", "--out", str(tmp_path)
    )
    assert code == 0, err
    report = json.loads((tmp_path / "compare.json").read_text())
    rows = report["results"]
    # 3 problems x 2 sizes x 2 dtypes, all on the numpy backend.
    assert len(rows) == 12
    assert {(r["problem"], r["n"], r["dtype"]) for r in rows} == {
        (p, n, dt) for p in ("sgd", "adam", "gd") for n in (128, 1024)
        for dt in ("float32", "float64")
    }
    bandwidth = report["bandwidth"]["bandwidth_gbs"]
    assert 0.1 < bandwidth < 10_000
    for r in rows:
        assert "error" not in r
        assert r["backend"] == "numpy" and r["device"] == "cpu"
        assert r["time_per_epoch_s"] > 0 and r["runs"] == 1
        assert math.isclose(r["samples_per_s"], r["n"] / r["time_per_epoch_s"])
        itemsize = 4 if r["dtype"] == "float32" else 8
        assert r["bytes_per_epoch"] == r["n"] * (r["d"] + 1) * itemsize
        assert math.isclose(r["pct_bandwidth"], 100 * r["effective_gbs"] / bandwidth)
        assert math.isfinite(r["objective"]) and r["objective"] >= 0
        assert r["max_abs_param_diff"] == 0.0 and r["check"] == "ok"  # numpy against itself
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"]
    assert machine["versions"]["numpy"] == np.__version__
    assert report["settings"]["problems"]["sgd"]["batch_size"] == 1
    png = (tmp_path / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "problem" in out and "max abs Δθ vs numpy" in out
    assert f"wrote {tmp_path / 'compare.png'}" in out
    markdown = (tmp_path / "compare.md").read_text()
    assert markdown.count("\n| sgd | 128x4 |") == 2  # float32 and float64


def test_compare_every_backend_agrees_with_numpy(capsys, tmp_path):
    code, out, err = _run(
        capsys, *TINY, "--sizes", "256x8", "--dtype", "float64", "--markdown",
        "--problems", "squared", "--peers", "none", "--no-curves", "--out", str(tmp_path),
    )
    assert code == 0, err
    rows = json.loads((tmp_path / "compare.json").read_text())["results"]
    targets = {r["backend"] for r in rows}
    assert targets == set(fastgd.available_backends())
    for r in rows:
        assert r["max_rel_param_diff"] <= 1e-9 and r["check"] == "ok", r
        if r["backend"] != "numpy":
            assert r["first_call_s"] is not None and r["compile_s"] >= 0
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| problem | n x d | dtype | backend | device | time/epoch")
    assert table[0].endswith("| check | t to 1e-3 | max abs Δθ vs numpy |")
    assert len(table) == 1 + len(rows)


def test_compare_without_matplotlib_still_writes_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, _, err = _run(
        capsys, *TINY, "--backends", "numpy", "--peers", "none", "--problems", "gd",
        "--sizes", "64x2", "--out", str(tmp_path),
    )
    assert code == 0
    assert (tmp_path / "compare.json").exists()
    assert not (tmp_path / "compare.png").exists()
    assert "matplotlib is not installed" in err and "fastgd[plot]" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--sizes", "abc"], "bad size 'abc'"),
        (["compare", "--sizes", "100x0"], "bad size '100x0'"),
        (["compare", "--backends", "torch"], "unknown backend 'torch'; choose from numpy"),
        (["compare", "--problems", "lbfgs"], "unknown problem 'lbfgs'; choose from sgd"),
        (["compare", "--problems", "lbfgs"], "or a family (squared, hinge, logistic"),
        (["compare", "--peers", "caffe"], "unknown peer 'caffe'; choose from sklearn"),
        (["compare", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["compare", "--repeat", "0"], "must be a positive integer, got '0'"),
        (["compare", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["launch"], "invalid choice: 'launch'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_arguments_are_clear_errors(capsys, argv, message):
    assert message in _error(capsys, *argv)


def test_out_must_be_a_directory(capsys, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    err = _error(capsys, *TINY, "--backends", "numpy", "--out", str(target))
    assert "exists and is not a directory" in err


def test_compare_rounds_time_blocks_after_an_untimed_fit(monkeypatch):
    """Each round: one untimed fit, then timed ones; times stop at ``repeat`` fits."""
    from fastgd import compare
    from fastgd.compare_runners import FastgdRunner

    calls = []
    real_fit = FastgdRunner.fit

    def counted(runner):
        calls.append(runner.backend)
        return real_fit(runner)

    monkeypatch.setattr(FastgdRunner, "fit", counted)
    X, y, _ = fastgd.make_regression(64, 4, seed=0)
    cfg = compare.CompareConfig(repeat=4, budget_s=60.0, min_runs=4, stable_spread=10.0)
    problem = compare.PROBLEMS["gd"]
    cells = [compare._Cell(FastgdRunner(problem, X, y, b, "cpu")) for b in ("numpy", "numba")]
    compare._time_interleaved(cells, cfg)
    for cell in cells:
        assert cell.error is None and len(cell.times) == 4
    # numpy: 2 rounds x (1 untimed + at most 3 timed); numba adds its compiling warm-up
    assert calls.count("numpy") == 2 + 4
    assert calls.count("numba") == 1 + 2 + 4


class _FakeClock:
    """``time`` as :func:`fastgd.compare._quiesce` sees it: ``sleep`` advances the wall
    clock, and the process's CPU time grows as fast as the wall clock while its threads
    are busy (until ``busy_until``), not at all after."""

    def __init__(self, busy_for: float):
        self.now = 0.0
        self.cpu = 0.0
        self.busy_until = busy_for

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        busy = max(0.0, min(self.now + seconds, self.busy_until) - self.now)
        self.cpu += busy
        self.now += seconds


@pytest.mark.parametrize(("busy_for", "max_s", "expected"), [
    (0.0, 1.0, 0.005),  # idle: one step
    (0.3, 2.0, 0.305),  # busy threads for 0.3 s: waits for them, then one idle step
    (5.0, 0.2, 0.2),  # busy for longer than max_s: never longer than max_s
])  # fmt: skip
def test_quiesce_waits_for_busy_threads_and_is_bounded(monkeypatch, busy_for, max_s,
                                                        expected):
    import fastgd.compare as compare

    clock = _FakeClock(busy_for)
    monkeypatch.setattr(compare, "time", clock)
    compare._quiesce(max_s=max_s)
    assert clock.now == pytest.approx(expected, abs=0.006)
