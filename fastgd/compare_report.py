"""The report of ``fastgd compare``: time to a model, the table, the JSON and the plot.

Time to a model: for each family, the best objective ``f*`` is the lowest objective any
runner's curve reached on that family's curve data (every problem of the family, every
runner). A runner's *time to within 1e-3 of the best objective* is the training time at
the end of its first epoch whose objective f satisfies ``(f − f*) / |f*| ≤ 1e-3``
(relative; ``f*`` of 0 falls back to an absolute 1e-3); runs that never get there have
none ("not reached").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "TARGET_GAP",
    "add_time_to_target",
    "figure_summary",
    "format_table",
    "save_json",
    "save_plot",
    "time_to_target",
]

#: The relative gap to the best objective of "time to within 1e-3 of the best objective".
TARGET_GAP = 1e-3


# ------------------------------------------------------------------ time to a model


def time_to_target(times, objectives, best: float, gap: float = TARGET_GAP) -> float | None:
    """The first time at which ``(objective − best) / |best| ≤ gap``; None if never.

    Parameters
    ----------
    times, objectives : sequences of float, same length
        A curve: training seconds (non-decreasing) and the objective at those times.
    best : float
        The best objective found (``|best|`` of 0 counts as 1: an absolute gap).
    """
    scale = abs(best) if best != 0 else 1.0
    for t, f in zip(times, objectives, strict=True):
        if math.isfinite(f) and (f - best) / scale <= gap:
            return float(t)
    return None


def add_time_to_target(curves: list[dict], rows: list[dict]) -> dict[str, float]:
    """Fill in each curve's and each matching result row's ``time_to_target_s``.

    Returns
    -------
    dict
        The best objective of each family (over all its curves).
    """
    best: dict[str, float] = {}
    for curve in curves:
        finite = [f for f in curve["objective"] if math.isfinite(f)]
        if finite:
            best[curve["family"]] = min(best.get(curve["family"], math.inf), min(finite))
    for curve in curves:
        f_best = best.get(curve["family"])
        curve["best_objective"] = f_best
        curve["time_to_target_s"] = None if f_best is None else time_to_target(
            curve["times_s"], curve["objective"], f_best)
    by_key = {_key(c): c for c in curves}
    for row in rows:
        curve = by_key.get(_key(row))
        if curve is not None:
            row["time_to_target_s"] = curve["time_to_target_s"]
            row["curve_epochs"] = curve["epochs"]
    return best


def _key(entry: dict) -> tuple:
    return (entry["problem"], entry["n"], entry["d"], entry["dtype"], entry["backend"],
            entry["device"])


# ------------------------------------------------------------------------ the table


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def _fmt_percent(value: float) -> str:
    """Whole percent from 10 % up, two significant digits below (in-cache runs exceed 100 %)."""
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def _fmt_optional(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _fmt_target(row: dict) -> str:
    if "curve_epochs" not in row:
        return ""
    value = row.get("time_to_target_s")
    return f"not in {row['curve_epochs']} ep" if value is None else _fmt_time(value)


def _runner_name(row: dict) -> str:
    return f"{row['backend']} {row['version']}" if row.get("peer") else row["backend"]


_COLUMNS: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("problem", lambda r: r["problem"]),
    ("n x d", lambda r: f"{r['n']}x{r['d']}"),
    ("dtype", lambda r: r["dtype"]),
    ("backend", _runner_name),
    ("device", lambda r: r["device"]),
    ("time/epoch", lambda r: _fmt_time(r["time_per_epoch_s"]) + (" ~" if r["unstable"] else "")),
    ("min", lambda r: _fmt_time(r["min_per_epoch_s"])),
    ("spread", lambda r: f"{100 * r['spread']:.0f}%"),
    ("runs", lambda r: str(r["runs"])),
    ("samples/s", lambda r: _fmt_count(r["samples_per_s"])),
    ("GB/s", lambda r: f"{r['effective_gbs']:.3g}"),
    ("% bw", lambda r: _fmt_percent(r["pct_bandwidth"])),
    ("objective", lambda r: f"{r['objective']:.6g}"),
    ("check", lambda r: r["check"] if r["check"].startswith(("ok", "n/a")) else "FAILED"),
    ("t to 1e-3", _fmt_target),
    ("max abs Δθ vs numpy", lambda r: _fmt_optional(r["max_abs_param_diff"], ".1e")),
)


def _cells_of(row: dict) -> list[str]:
    if "error" in row:
        head = [fn(row) for _, fn in _COLUMNS[:5]]
        what = "not supported: " if row.get("unsupported") else "failed: "
        return head + [what + row["error"][:60]] + [""] * (len(_COLUMNS) - 6)
    return [fn(row) for _, fn in _COLUMNS]


def _notes(report: dict) -> list[str]:
    """The peers' descriptions, the failed checks and the skipped problems."""
    lines = []
    peers = dict.fromkeys(f"{r['problem']} {r['backend']}/{r['device']}: {r['runner']}"
                          for r in report["results"] if r.get("peer") and "runner" in r)
    if peers:
        lines.append("Peers (same data, batches, learning rate and start as the fastgd rows):")
        lines += [f"  {line}" for line in peers]
    for r in report["results"]:
        if not r.get("check", "ok").startswith(("ok", "n/a")):
            lines.append(f"check failed: {r['problem']} {r['n']}x{r['d']} {r['dtype']} "
                         f"{r['backend']}/{r['device']}: {r['check']}")
    others = dict.fromkeys(f"{r['problem']} {r['n']}x{r['d']} {r['dtype']}: {r['reference']}"
                           for r in report["results"] if r.get("reference") not in
                           (None, "numpy"))
    lines += [f"reference of the checks (numpy failed) for {line}" for line in others]
    for skipped in report.get("skipped", []):
        lines.append(f"skipped {skipped['problem']}: {skipped['reason']}")
    if report.get("curves"):
        lines.append(f"t to 1e-3: training time until (objective − best) / |best| <= "
                     f"{TARGET_GAP:g}, best = the lowest objective of the family's curves; "
                     "only the curve data's rows")
    return lines


def format_table(report: dict, markdown: bool = False) -> str:
    """The results as a text table (or a markdown table), preceded by the bandwidth line
    and followed by the peers' descriptions, failed checks and skipped problems."""
    header = [name for name, _ in _COLUMNS]
    body = [_cells_of(r) for r in report["results"]]
    bw = report["bandwidth"]
    intro = (
        f"Measured memory bandwidth: {bw['bandwidth_gbs']:.1f} GB/s "
        f"(numpy sum {bw['sum_gbs']:.1f}, BLAS gemv {bw['gemv_gbs']:.1f}) on "
        f"{report['machine']['cpu_model']}, {report['machine']['threads']['cpus_usable']} CPUs."
    )
    notes = "\n".join(_notes(report))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return intro + "\n\n" + "\n".join(lines) + ("\n\n" + notes if notes else "")
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h)
              for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*cells) for cells in body]
    return intro + "\n" + "\n".join(lines) + ("\n" + notes if notes else "")


def save_json(report: dict, path: Path) -> None:
    """Write the report as JSON (every figure, the curves, the settings, the machine)."""
    path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def figure_summary(report: dict) -> str:
    """One line per runner (backend/device): total compile time and median samples/s."""
    by_target: dict[str, list[dict]] = {}
    for row in report["results"]:
        if "error" not in row:
            by_target.setdefault(f"{row['backend']}/{row['device']}", []).append(row)
    lines = []
    for target, rows in by_target.items():
        compile_s = sum(r["compile_s"] or 0.0 for r in rows)
        rate = math.exp(float(np.mean([math.log(r["samples_per_s"]) for r in rows])))
        lines.append(
            f"{target}: compile {compile_s:.2f} s in total, geometric-mean {_fmt_count(rate)} "
            "samples/s"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------- the plot


def save_plot(report: dict, path: Path) -> None:
    """One row of panels per family: effective GB/s against the size of X for each of its
    problems (float32 solid, float64 dashed; the measured memory bandwidth dotted), then
    its time-to-a-model panel (objective − best objective against training seconds, both
    log scale, one line per problem and runner).

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install "fastgd[plot]"``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if "error" not in r]
    curves = report.get("curves", [])
    families = list(dict.fromkeys([r["family"] for r in rows] + [c["family"] for c in curves]))
    if not families:
        families = ["(none)"]
    problems = {f: list(dict.fromkeys(r["problem"] for r in rows if r["family"] == f))
                for f in families}
    columns = max(len(p) for p in problems.values()) + 1
    fig, axes = plt.subplots(len(families), columns, squeeze=False,
                             figsize=(4.2 * columns, 3.3 * len(families) + 1.2))
    colors = _runner_colors(rows, curves, plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for i, family in enumerate(families):
        for j in range(columns - 1):
            ax = axes[i][j]
            if j < len(problems[family]):
                _throughput_panel(ax, report, rows, problems[family][j], colors)
            else:
                ax.axis("off")
        _curve_panel(axes[i][-1], [c for c in curves if c["family"] == family], colors, family)
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center",
               ncol=min(len(handles), 6), frameon=False, fontsize=8)
    machine = report["machine"]
    fig.suptitle(
        f"fastgd {report['fastgd_version']}: throughput and time to a model — "
        f"{machine['cpu_model']}, {machine['threads']['cpus_usable']} CPUs", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.98))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _runner_colors(rows, curves, cycle: list[str]) -> dict[str, str]:
    names = dict.fromkeys(f"{r['backend']}/{r['device']}" for r in [*rows, *curves])
    return {name: cycle[k % len(cycle)] for k, name in enumerate(names)}


def _throughput_panel(ax, report: dict, rows: list[dict], problem: str, colors) -> None:
    """Median GB/s against size per runner and dtype, the IQR as error bars, unstable
    cells hollow, the measured bandwidth dotted."""
    from matplotlib import ticker

    for dtype, style in (("float32", "-"), ("float64", "--")):
        for target, color in colors.items():
            cells = sorted((r for r in rows if r["problem"] == problem and r["dtype"] == dtype
                            and f"{r['backend']}/{r['device']}" == target),
                           key=lambda r: r["bytes_per_epoch"])
            if cells:
                _plot_target(ax, cells, color, target, style)
    bandwidth = report["bandwidth"]["bandwidth_gbs"]
    ax.axhline(bandwidth, color="black", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, which="both", alpha=0.3)
    label = report["settings"]["problems"].get(problem, {}).get("label", problem)
    ax.set_title(f"{label}\n(— float32, -- float64; dotted: {bandwidth:.1f} GB/s)", fontsize=8)
    ax.set_xlabel("MB read per epoch", fontsize=8)
    ax.set_ylabel("effective GB/s", fontsize=8)


def _plot_target(ax, cells: list[dict], color: str, label: str, style: str) -> None:
    xs = np.array([r["bytes_per_epoch"] / 1e6 for r in cells])
    ys = np.array([r["effective_gbs"] for r in cells])
    low = np.array([r["bytes_per_epoch"] / r["q3_per_epoch_s"] / 1e9 for r in cells])
    high = np.array([r["bytes_per_epoch"] / r["q1_per_epoch_s"] / 1e9 for r in cells])
    ax.errorbar(xs, ys, yerr=[ys - low, high - ys], color=color, marker="o", capsize=3,
                linestyle=style, label=label, markersize=4)
    unstable = np.array([r["unstable"] for r in cells])
    if unstable.any():
        ax.plot(xs[unstable], ys[unstable], linestyle="none", marker="o", markersize=8,
                markerfacecolor="white", color=color)


def _curve_panel(ax, curves: list[dict], colors, family: str) -> None:
    """Objective − best against training seconds (log-log), one line per problem and
    runner (markers distinguish the problems)."""
    if not curves:
        ax.axis("off")
        return
    markers = dict(zip(dict.fromkeys(c["problem"] for c in curves), "os^vDx", strict=False))
    best = curves[0]["best_objective"]
    floor = max(abs(best), 1.0) * 1e-9
    for c in curves:
        t = np.asarray(c["times_s"][1:])  # the start (t = 0) has no place on a log axis
        gap = np.maximum(np.asarray(c["objective"][1:]) - best, floor)
        target = f"{c['backend']}/{c['device']}"
        ax.plot(t, gap, marker=markers[c["problem"]], markersize=3, linewidth=1,
                color=colors.get(target), label=target)
    for problem, marker in markers.items():
        ax.plot([], [], marker=marker, color="gray", linestyle="none", label=problem)
    ax.axhline(TARGET_GAP * (abs(best) or 1.0), color="black", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{family}: time to a model (n x d = {curves[0]['n']}x{curves[0]['d']}, "
                 f"{curves[0]['dtype']})\ndotted: 1e-3 of the best objective {best:.4g}",
                 fontsize=8)
    ax.set_xlabel("training seconds", fontsize=8)
    ax.set_ylabel("objective − best", fontsize=8)
