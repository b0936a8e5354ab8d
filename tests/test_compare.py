"""``fastgd compare``'s families, peers, answer checks and time-to-a-model curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fastgd
from fastgd import compare, compare_problems, compare_runners
from fastgd.cli import main
from fastgd.compare_problems import FAMILIES, PROBLEMS, make_data, objective, select_problems
from fastgd.compare_report import add_time_to_target, time_to_target

TINY = ["compare", "--quick", "--no-progress", "--repeat", "1", "--sizes", "256x6"]


def _report(capsys, tmp_path, *argv: str) -> tuple[int, dict, str]:
    code = main([*TINY, *argv, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    return code, json.loads((tmp_path / "compare.json").read_text()), out


# ------------------------------------------------------------------ families, objective


@pytest.mark.parametrize("family", [f for f in FAMILIES if not FAMILIES[f].sparse])
def test_objective_is_fits_objective(family):
    """At zero and after one full-batch step, :func:`objective` is the loss fastgd reports
    for a full batch (evaluated before the update) plus the penalty."""
    X, y = make_data(family, 64, 3, "float64", seed=1)
    spec = FAMILIES[family]
    result = fastgd.fit(X, y, loss=spec.loss, penalty=spec.penalty, alpha=spec.alpha, lr=0.5,
                        batch_size=None, epochs=2, shuffle=False)
    start = compare_runners.theta_of(np.zeros_like(result.coef), np.zeros_like(result.intercept))
    assert objective(family, X, y, start) == pytest.approx(result.loss_history[0], rel=1e-12)
    one_step = fastgd.fit(X, y, loss=spec.loss, penalty=spec.penalty, alpha=spec.alpha, lr=0.5,
                          batch_size=None, epochs=1, shuffle=False)
    theta = compare_runners.theta_of(one_step.coef, one_step.intercept)
    assert objective(family, X, y, theta) == pytest.approx(result.loss_history[1], rel=1e-12)


def test_family_data_have_the_documented_shapes():
    X, y = make_data("multinomial", 300, 5, "float32")
    assert X.shape == (300, 5) and X.dtype == np.float32
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(compare_problems.N_CLASSES))
    X, y = make_data("hinge", 50, 4, "float64")
    assert set(np.unique(y)) == {0.0, 1.0}
    X, y = make_data("sparse", 40, 4, "float64")
    assert X.shape == (40, compare_problems.SPARSE_FEATURES)
    assert np.all(np.diff(X.indptr) == compare_problems.SPARSE_ROW_NONZEROS)
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)), 1.0)


def test_problems_select_by_name_or_family():
    assert select_problems(("hinge",)) == ("hinge-sgd", "hinge-adam")
    assert select_problems(("gd", "squared")) == ("sgd", "adam", "gd")
    assert select_problems(("hinge-adam", "gd")) == ("gd", "hinge-adam")
    assert {PROBLEMS[p].family for p in select_problems(tuple(FAMILIES))} == set(FAMILIES)
    with pytest.raises(ValueError, match="unknown problem 'svm'.*family"):
        select_problems(("svm",))


def test_cli_problems_selects_those_rows_only(capsys, tmp_path):
    code, report, _ = _report(capsys, tmp_path, "--backends", "numpy", "--peers", "none",
                              "--problems", "hinge,gd", "--no-curves")
    assert code == 0
    assert [r["problem"] for r in report["results"]] == ["gd", "hinge-sgd", "hinge-adam"]
    assert set(report["settings"]["problems"]) == {"gd", "hinge-sgd", "hinge-adam"}
    assert report["curves"] == []


# ---------------------------------------------------------------------- peers, checks


def test_peers_agree_with_numpy_and_say_what_they_are(capsys, tmp_path):
    peers = [p for p in ("sklearn", "optax", "torch") if p in compare_runners.available_peers()]
    code, report, out = _report(capsys, tmp_path, "--backends", "numpy", "--peers",
                                ",".join(peers), "--problems", "logistic", "--no-curves")
    assert code == 0, out
    rows = report["results"]
    by_runner = {(r["problem"], r["backend"]) for r in rows}
    if "sklearn" in peers:
        assert ("logistic-sgd", "sklearn") in by_runner  # per-sample problems only
    for peer in {"optax", "torch"} & set(peers):
        assert ("logistic-gd", peer) in by_runner and ("logistic-sgd", peer) not in by_runner
    for r in rows:
        assert r["check"] == "ok" and r["max_rel_param_diff"] <= 1e-8, r
        if r["peer"]:
            assert r["version"] in r["runner"]
            assert f"{r['problem']} {r['backend']}/cpu: {r['runner']}" in out


def test_the_sparse_family_equals_scikit_learn_on_csr(capsys, tmp_path):
    """scikit-learn damps the intercept's steps by 0.01 on sparse X: the sparse family's
    fastgd rows pass ``intercept_decay=0.01``, and the two agree."""
    code, report, out = _report(capsys, tmp_path, "--backends", "numpy", "--peers", "sklearn",
                                "--problems", "sparse", "--no-curves")
    assert code == 0, out
    rows = {r["backend"]: r for r in report["results"]}
    assert set(rows) == {"numpy", "sklearn"} and rows["numpy"]["d"] == 4096
    assert rows["sklearn"]["check"] == "ok" and rows["sklearn"]["max_rel_param_diff"] <= 1e-8


def test_a_wrong_peer_answer_fails_its_check(capsys, tmp_path, monkeypatch):
    """The peers read the learning rate from ``Problem.lr``; a doubled one is a different
    algorithm, caught by the answer check (the command then exits with status 1)."""
    monkeypatch.setattr(compare_problems.Problem, "lr", property(lambda p: 2 * p.optimizer.lr.lr0))
    peers = [p for p in ("sklearn", "optax") if p in compare_runners.available_peers()]
    code, report, out = _report(capsys, tmp_path, "--backends", "numpy", "--peers",
                                ",".join(peers), "--problems", "sgd,gd", "--no-curves")
    assert code == 1
    checks = {(r["problem"], r["backend"]): r["check"] for r in report["results"]}
    assert checks[("sgd", "numpy")] == checks[("gd", "numpy")] == "ok"
    failed = {k for k, v in checks.items() if v.startswith("parameters differ")}
    assert failed == {k for k in checks if k[1] != "numpy"} and failed
    assert "check failed: sgd 256x6 float64" in out or "check failed: gd 256x6" in out


@pytest.mark.parametrize(("error", "status"), [(NotImplementedError, 0), (RuntimeError, 1)])
def test_a_gap_is_not_supported_and_a_crash_fails(capsys, tmp_path, monkeypatch, error, status):
    real_fit = compare_runners.FastgdRunner.fit

    def fit(runner):
        if runner.backend == "numba":
            raise error("no such thing")
        return real_fit(runner)

    monkeypatch.setattr(compare_runners.FastgdRunner, "fit", fit)
    code, report, out = _report(capsys, tmp_path, "--backends", "numpy,numba", "--peers",
                                "none", "--problems", "gd", "--no-curves")
    assert code == status
    numba = next(r for r in report["results"] if r["backend"] == "numba")
    assert numba["error"] == f"{error.__name__}: no such thing"
    assert numba["unsupported"] == (error is NotImplementedError)
    word = "not supported" if error is NotImplementedError else "failed"
    assert f"{word}: {error.__name__}: no such thing" in out


def test_sparse_family_is_skipped_with_the_reason_when_fit_refuses_it(capsys, tmp_path,
                                                                       monkeypatch):
    reason = "fastgd.fit does not accept sparse X yet (TypeError: no)"
    monkeypatch.setattr(compare, "sparse_support", lambda: reason)
    code = main([*TINY, "--backends", "numpy", "--peers", "none", "--problems", "sparse,gd",
                 "--no-curves"])
    captured = capsys.readouterr()
    assert code == 0
    assert f"skipped sparse-sgd: {reason}" in captured.out + captured.err
    assert "| sparse-sgd" not in captured.out


# --------------------------------------------------------------------------- curves


def test_time_to_target_on_a_synthetic_curve():
    times, values = [0.0, 1.0, 2.0, 3.0], [10.0, 5.0, 2.0015, 2.0]
    assert time_to_target(times, values, best=2.0) == 2.0  # 0.0015 / 2 = 7.5e-4 <= 1e-3
    assert time_to_target(times, [10.0, 5.0, 2.0019, 2.0], best=2.0) == 2.0  # 9.5e-4 <= 1e-3
    assert time_to_target(times, [10.0, 5.0, 2.0021, 2.0], best=2.0) == 3.0  # 1.05e-3 > 1e-3
    assert time_to_target(times, [10.0, 5.0, 4.0, 3.0], best=2.0) is None
    assert time_to_target(times, [10.0, -1.0001, -1.0, -1.0], best=-1.0) == 1.0  # |best|
    assert time_to_target(times, [1.0, 0.01, 5e-4, 0.0], best=0.0) == 2.0  # absolute at 0
    assert time_to_target(times, [math.nan, 1.0, 1.0, 1.0], best=1.0) == 1.0


def test_best_objective_is_over_the_whole_family():
    curve = {"n": 8, "d": 2, "dtype": "float64", "device": "cpu"}
    curves = [
        {**curve, "family": "f", "problem": "a", "backend": "x", "epochs": 2,
         "times_s": [0.0, 1.0, 2.0], "objective": [3.0, 1.5, 1.0015]},
        {**curve, "family": "f", "problem": "b", "backend": "y", "epochs": 2,
         "times_s": [0.0, 0.5, 4.0], "objective": [3.0, 1.0009, 1.0]},
        {**curve, "family": "g", "problem": "c", "backend": "x", "epochs": 1,
         "times_s": [0.0, 1.0], "objective": [3.0, 2.0]},
    ]
    rows = [{**curve, "problem": "a", "backend": "x"}, {**curve, "problem": "z", "backend": "x"}]
    assert add_time_to_target(curves, rows) == {"f": 1.0, "g": 2.0}
    assert [c["time_to_target_s"] for c in curves] == [None, 0.5, 1.0]
    assert rows[0]["time_to_target_s"] is None and rows[0]["curve_epochs"] == 2
    assert "time_to_target_s" not in rows[1]


def test_curves_in_the_json(capsys, tmp_path):
    peers = [p for p in ("sklearn", "optax") if p in compare_runners.available_peers()]
    code, report, out = _report(capsys, tmp_path, "--backends", "numpy", "--peers",
                                ",".join(peers) or "none", "--problems", "hinge")
    assert code == 0, out
    curves = report["curves"]
    expected = {(r["problem"], r["backend"]) for r in report["results"]}
    assert {(c["problem"], c["backend"]) for c in curves} == expected
    X, y = make_data("hinge", 256, 6, "float64")
    for c in curves:
        times, values = np.array(c["times_s"]), np.array(c["objective"])
        assert len(times) == len(values) == c["epochs"] + 1 and c["epochs"] >= 1
        assert times[0] == 0.0 and np.all(np.diff(times) > 0), c
        assert np.all(np.isfinite(values)) and values[0] == pytest.approx(1.0)  # hinge at 0
        assert c["best_objective"] == report["best_objective"]["hinge"] <= values.min()
        assert c["repeats"] == len(c["repeat_times_s"]) == 2  # --quick
        np.testing.assert_array_equal(times[1:], np.min(c["repeat_times_s"], axis=0))
    best = report["best_objective"]["hinge"]
    assert best == min(min(c["objective"]) for c in curves)
    assert best < objective("hinge", X, y, np.zeros(7))
    for r in report["results"]:
        curve = next(c for c in curves if (c["problem"], c["backend"]) == (r["problem"],
                                                                           r["backend"]))
        assert r["time_to_target_s"] == time_to_target(curve["times_s"], curve["objective"],
                                                       best)
    # curves of one runner on one algorithm reach the same objectives epoch by epoch
    sgd = [c for c in curves if c["problem"] == "hinge-sgd"]
    shortest = min(c["epochs"] for c in sgd)
    for c in sgd[1:]:
        np.testing.assert_allclose(c["objective"][: shortest + 1],
                                   sgd[0]["objective"][: shortest + 1], rtol=1e-9)
    assert "t to 1e-3" in out and (tmp_path / "compare.png").stat().st_size > 20_000


def test_the_check_rule_per_dtype():
    """float64: parameters within 1e-8 (relative to the largest); float32: within 1e-3, or
    else the objective within 1e-2 of the reference's ('ok (objective)')."""
    reference = np.array([[1.0], [-2.0]])

    def checked(dtype: str, theta_shift: float, objective_value: float) -> str:
        row = {"dtype": dtype, "objective": objective_value,
               "theta": reference + np.array([[theta_shift], [0.0]])}
        compare._add_checks([row], reference, "numpy", 0.5)
        return row["check"]

    assert checked("float64", 1.9e-8, 0.5) == "ok"
    assert checked("float64", 2.1e-8, 0.5).startswith("parameters differ from numpy's by 1")
    assert checked("float32", 1.9e-3, 0.7) == "ok"
    assert checked("float32", 0.1, 0.5049) == "ok (objective)"
    assert checked("float32", 0.1, 0.5051).startswith("parameters differ")
    assert checked("float64", 0.1, 0.5) != "ok (objective)"
