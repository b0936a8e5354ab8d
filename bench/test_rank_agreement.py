"""``bench/rank_agreement.py``: which runner pairs two compare reports rank differently."""

from __future__ import annotations

import json

from rank_agreement import MEASURES, disagreements, main, medians


def _report(path, times: dict[str, float], targets: dict[str, float | None] | None = None,
            unstable: tuple[str, ...] = ()) -> str:
    """A report of one cell (gd, 8x2, float64) of fastgd backends and peers; ``targets``
    gives the rows' time to 1e-3 (the family's curve data)."""
    rows = []
    for backend, t in times.items():
        row = {"problem": "gd", "family": "squared", "n": 8, "d": 2, "dtype": "float64",
               "backend": backend, "device": "cpu", "peer": backend in ("optax", "torch"),
               "time_per_epoch_s": t, "min_per_epoch_s": t / 2,
               "unstable": backend in unstable}
        if targets is not None and backend in targets:
            row["time_to_target_s"] = targets[backend]
        rows.append(row)
    rows.append({"problem": "gd", "family": "squared", "n": 8, "d": 2, "dtype": "float64",
                 "backend": "broken", "device": "cpu", "error": "RuntimeError: no"})
    path.write_text(json.dumps({"results": rows}))
    return str(path)


def test_pairs_within_the_margin_in_both_reports_are_not_compared(tmp_path):
    first = medians(_report(tmp_path / "a.json", {"numba": 1.0, "jax": 1.1}))
    second = medians(_report(tmp_path / "b.json", {"numba": 1.1, "jax": 1.0}))
    assert disagreements(first, second, 0.2) == (0, [])


def test_a_swapped_order_beyond_the_margin_is_reported(tmp_path, capsys):
    a = _report(tmp_path / "a.json", {"numba": 1.0, "jax": 2.0, "numpy": 3.0, "optax": 0.5})
    b = _report(tmp_path / "b.json", {"numba": 1.0, "jax": 3.5, "numpy": 3.0, "optax": 0.4})
    compared, lines = disagreements(medians(a), medians(b), 0.2)
    assert compared == 6
    assert len(lines) == 1 and "jax/cpu vs numpy/cpu" in lines[0]
    assert main([a, b]) == 1
    assert "time/epoch: 6 pairs differ by more than 20%; 1 ranked differently" in (
        capsys.readouterr().out)
    assert main([a, a]) == 0
    assert "time/epoch: 6 pairs differ by more than 20%; 0 ranked differently" in (
        capsys.readouterr().out)


def test_time_to_target_is_ranked_too(tmp_path, capsys):
    times = {"numba": 1.0, "optax": 1.0, "numpy": 1.0}
    a = _report(tmp_path / "a.json", times, {"numba": 0.01, "optax": 0.05, "numpy": None})
    b = _report(tmp_path / "b.json", times, {"numba": 0.09, "optax": 0.05, "numpy": 2.0})
    _, field, group = MEASURES[1]
    first = medians(a, field, group)
    assert first == {("squared", "8x2", "float64"): {("gd", "numba", "cpu"): 0.01,
                                                    ("gd", "optax", "cpu"): 0.05}}
    compared, lines = disagreements(first, medians(b, field, group), 0.2)
    assert compared == 1 and "gd/numba/cpu vs gd/optax/cpu" in lines[0]
    assert main([a, b]) == 1
    out = capsys.readouterr().out
    assert "time/epoch: 0 pairs differ" in out
    assert "time to 1e-3: 1 pairs differ by more than 20%; 1 ranked differently" in out


def test_min_and_stable_only(tmp_path, capsys):
    a = _report(tmp_path / "a.json", {"numba": 1.0, "jax": 2.0}, unstable=("jax",))
    b = _report(tmp_path / "b.json", {"numba": 2.0, "jax": 1.0})
    assert main([a, b]) == 1
    assert main([a, b, "--stable-only"]) == 0
    assert main([a, b, "--stat", "min"]) == 1
    out = capsys.readouterr().out
    assert "time/epoch: 0 pairs differ" in out  # --stable-only: jax left out of a
    assert "min time/epoch: 1 pairs differ by more than 20%; 1 ranked differently" in out
