"""``bench/rank_agreement.py``: which runner pairs two compare reports rank differently."""

from __future__ import annotations

import json

from rank_agreement import disagreements, main, medians


def _report(path, times: dict[str, float]) -> str:
    rows = [{"problem": "gd", "n": 8, "d": 2, "dtype": "float64", "backend": backend,
             "device": "cpu", "time_per_epoch_s": t} for backend, t in times.items()]
    rows.append({"problem": "gd", "n": 8, "d": 2, "dtype": "float64", "backend": "broken",
                 "device": "cpu", "error": "RuntimeError: no"})
    path.write_text(json.dumps({"results": rows}))
    return str(path)


def test_pairs_within_the_margin_in_both_reports_are_not_compared(tmp_path):
    first = medians(_report(tmp_path / "a.json", {"numba": 1.0, "jax": 1.1}))
    second = medians(_report(tmp_path / "b.json", {"numba": 1.1, "jax": 1.0}))
    assert disagreements(first, second, 0.2) == (0, [])


def test_a_swapped_order_beyond_the_margin_is_reported(tmp_path, capsys):
    a = _report(tmp_path / "a.json", {"numba": 1.0, "jax": 2.0, "numpy": 3.0})
    b = _report(tmp_path / "b.json", {"numba": 1.0, "jax": 3.5, "numpy": 3.0})
    compared, lines = disagreements(medians(a), medians(b), 0.2)
    assert compared == 3
    assert len(lines) == 1 and "jax/cpu vs numpy/cpu" in lines[0]
    assert main([a, b]) == 1
    assert main([a, a]) == 0
    assert "0 ranked differently" in capsys.readouterr().out
