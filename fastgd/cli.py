"""The ``fastgd`` command: ``fastgd compare`` and ``fastgd info``.

``fastgd compare`` runs the same training problems on every backend and device present and
prints (or saves) a table and a plot; ``fastgd info`` tells what fastgd finds on this
machine. Also runnable as ``python -m fastgd``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .auto import choose_backend
from .backends import BACKEND_MODULES, available_backends, get_backend
from .compare import (
    DEFAULT_FEATURES,
    DTYPES,
    FAMILIES,
    PEERS,
    PROBLEMS,
    CompareConfig,
    figure_summary,
    format_table,
    run_compare,
    save_json,
    save_plot,
)
from .compare_problems import select_problems
from .compare_runners import available_peers
from .machine import jax_mesh, jax_platforms, library_versions, numba_cache_dir, thread_counts

__all__ = ["main", "build_parser"]

_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def _count(text: str) -> int:
    """'4096', '64k' or '1M' as a positive int."""
    text = text.strip().lower()
    scale = _SUFFIXES.get(text[-1:], 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) * scale < 1:
        raise ValueError(text)
    return int(digits) * scale


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``--sizes``: comma-separated ``N`` or ``NxD`` (e.g. ``4096,64k,100000x100``)."""
    sizes = []
    for item in text.split(","):
        n_text, _, d_text = item.partition("x")
        try:
            n = _count(n_text)
            d = _count(d_text) if d_text else DEFAULT_FEATURES
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad size {item!r}: expected N or NxD with positive integers "
                "(k and M suffixes allowed), e.g. 4096,64k,100000x100"
            ) from None
        sizes.append((n, d))
    return tuple(sizes)


def _names(kind: str, known: Sequence[str]):
    """An argparse type for a comma-separated list of names out of ``known``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(t.strip() for t in text.split(",") if t.strip())
        bad = [t for t in names if t not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(repr, bad)) or repr(text)}; "
                f"choose from {', '.join(known)}"
            )
        return names

    return parse


def _problems(text: str) -> tuple[str, ...]:
    """``--problems``: comma-separated problems or families (a family: all its problems)."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    try:
        return select_problems(names or (text,))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peers(text: str) -> tuple[str, ...]:
    """``--peers``: comma-separated peers, or ``none``."""
    if text.strip() == "none":
        return ()
    return _names("peer", [*PEERS, "none"])(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastgd`` command."""
    parser = argparse.ArgumentParser(
        prog="fastgd", description="Gradient descent for linear models: numpy, numba and jax."
    )
    parser.add_argument("--version", action="version", version=f"fastgd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{compare,info}")
    cmp = sub.add_parser(
        "compare",
        help="time the same problems on every backend and device",
        description="Run the model families (squared, hinge, logistic, softmax K=10, sparse "
        "logistic) by per-sample SGD, mini-batch Adam and full-batch GD on every backend "
        "and jax device present, and with the peers that run the same algorithm "
        "(scikit-learn's SGD, an optax loop, PyTorch); print time/epoch, samples/s, "
        "effective GB/s against the measured memory bandwidth, the objective, the "
        "parameter difference from numpy (the answer check) and the time to within 1e-3 "
        "of the best objective. Exits with status 1 when a run fails or an answer check "
        "fails (a NotImplementedError, a documented gap, shows as 'not supported').",
    )
    cmp.add_argument("--quick", action="store_true",
                     help="one small size, fewer runs (under a minute)")
    cmp.add_argument("--out", type=Path, metavar="DIR",
                     help="write DIR/compare.json, DIR/compare.md and DIR/compare.png")
    cmp.add_argument("--markdown", action="store_true", help="print the table as markdown")
    cmp.add_argument("--backends", type=_names("backend", list(BACKEND_MODULES)),
                     metavar="LIST", help="comma-separated backends (default: all available)")
    cmp.add_argument("--problems", type=_problems, metavar="LIST",
                     help=f"comma-separated problems out of {','.join(PROBLEMS)}, or "
                     f"families ({','.join(FAMILIES)}: all their problems)")
    cmp.add_argument("--peers", type=_peers, metavar="LIST",
                     help=f"comma-separated peers out of {','.join(PEERS)}, or none "
                     "(default: those installed)")
    cmp.add_argument("--no-curves", action="store_true",
                     help="skip the time-to-a-model curves")
    cmp.add_argument("--sizes", type=_sizes, metavar="LIST",
                     help=f"comma-separated N or NxD (default d={DEFAULT_FEATURES})")
    cmp.add_argument("--dtype", choices=(*DTYPES, "both"),
                     help="floating-point type (default both; --quick: float64)")
    cmp.add_argument("--repeat", type=_positive_int, metavar="K",
                     help="at most K timed fits per cell, median reported; a cell stops "
                     "earlier once stable or out of its time budget (default 60, quick 50)")
    cmp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cmp.set_defaults(subparser=cmp)
    sub.add_parser("info", help="versions, devices, threads, caches, float64 support, "
                   "what backend='auto' picks")
    return parser


def _compare_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CompareConfig:
    """Turn parsed ``compare`` options into a config; unavailable backends are an error."""
    if args.backends:
        missing = [b for b in args.backends if b not in available_backends()]
        if missing:
            parser.error(
                f"backend {', '.join(missing)} is not available on this machine (its library "
                f"does not import); available: {', '.join(available_backends())}"
            )
    if args.peers:
        missing = [p for p in args.peers if p not in available_peers()]
        if missing:
            parser.error(f"peer {', '.join(missing)} is not installed here; installed: "
                         f"{', '.join(available_peers()) or 'none'}")
    overrides: dict[str, object] = {}
    if args.peers is not None:
        overrides["peers"] = args.peers
    if args.no_curves:
        overrides["curves"] = False
    if args.backends:
        overrides["backends"] = args.backends
    if args.problems:
        overrides["problems"] = args.problems
    if args.sizes:
        overrides["sizes"] = args.sizes
    if args.dtype is not None:
        overrides["dtypes"] = DTYPES if args.dtype == "both" else (args.dtype,)
    if args.repeat:
        overrides["repeat"] = args.repeat
    if args.quick:
        return CompareConfig.quick_config(**overrides)
    return dataclasses.replace(CompareConfig(), **overrides)


def _compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg = _compare_config(args, parser)
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"--out {args.out} exists and is not a directory")
        args.out.mkdir(parents=True, exist_ok=True)
    report = run_compare(cfg, progress=not args.no_progress)
    print(format_table(report, markdown=args.markdown))
    print()
    print(figure_summary(report))
    if args.out is not None:
        save_json(report, args.out / "compare.json")
        (args.out / "compare.md").write_text(format_table(report, markdown=True) + "\n")
        print(f"wrote {args.out / 'compare.json'} and compare.md")
        try:
            save_plot(report, args.out / "compare.png")
            print(f"wrote {args.out / 'compare.png'}")
        except ImportError:
            print(
                'no plot: matplotlib is not installed (pip install "fastgd[plot]")',
                file=sys.stderr,
            )
    failed = [r for r in report["results"] if ("error" in r and not r["unsupported"])
              or not r.get("check", "ok").startswith(("ok", "n/a"))]
    for skipped in report["skipped"]:
        print(f"skipped {skipped['problem']}: {skipped['reason']}", file=sys.stderr)
    return 1 if failed else 0


def _float64_support(name: str) -> str:
    """Whether ``name``'s gradient kernel keeps float64 in and out, tried on a tiny problem."""
    from .specs import Squared, lower_model

    try:
        kernels = get_backend(name)
        X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
        Y = np.array([[1.0], [2.0], [3.0]])
        theta = np.array([[0.1], [0.2], [0.3]])
        data, tb = kernels.prepare(X, Y, theta, None)
        _, grad = kernels.loss_grad(data, tb, lower_model(Squared(), 0.0, 0.0, True))
        dtype = np.asarray(grad).dtype
    except Exception as exc:  # report, don't crash: info is a diagnostic
        return f"error ({type(exc).__name__}: {exc})"
    return "yes" if dtype == np.float64 else f"no (float64 in, {dtype} out)"


def _mesh_line(mesh: dict) -> str:
    """``fastgd info``'s description of the mesh ``devices="all"`` trains on."""
    devices = mesh["devices"]
    if len(devices) == 1:
        return f"{mesh['label']} ({devices[0]}): one device, the single-device programs"
    processes = mesh["processes"]
    where = f"{processes} processes" if processes > 1 else "1 process"
    return f"{mesh['label']} over {where}, rows split over {', '.join(devices)}"


#: ``fastgd info``'s typical problems for ``backend="auto"``: label, then
#: ``choose_backend``'s (n, d, n_outputs, batch_size, epochs).
AUTO_EXAMPLES = (
    ("per-sample SGD, 200k x 100, 5 epochs", (200_000, 100, 1, 1, 5)),
    ("full batch, 2M x 32, 10 epochs", (2_000_000, 32, 1, None, 10)),
    ("mini-batch Adam, 200k x 100, batch 64, 5 epochs", (200_000, 100, 1, 64, 5)),
    ("tiny full batch, 100 x 5, 100 epochs", (100, 5, 1, None, 100)),
    ("one-vs-rest K=10, per-sample SGD, 200k x 100, 5 epochs", (200_000, 100, 10, 1, 5)),
)


def _auto_lines() -> list[str]:
    """What ``backend="auto"`` picks on this machine for :data:`AUTO_EXAMPLES`."""
    lines = []
    for label, (n, d, k, batch_size, epochs) in AUTO_EXAMPLES:
        try:
            picked = choose_backend(n, d, k, batch_size, epochs).describe()
        except Exception as exc:  # report, don't crash: info is a diagnostic
            picked = f"error ({type(exc).__name__}: {exc})"
        lines.append(f"  {label:56s} {picked}")
    return lines


def _info() -> int:
    versions = library_versions()
    print(f"fastgd {__version__}")
    print("versions:")
    for name in ("numpy", "numba", "jax", "jaxlib", "optax", "scikit-learn", "torch"):
        print(f"  {name:13s} {versions.get(name) or 'not installed'}")
    backends = available_backends()
    print(f"backends available: {', '.join(backends)}")
    missing = [b for b in BACKEND_MODULES if b not in backends]
    if missing:
        print(f"backends missing:   {', '.join(missing)} (their library does not import)")
    print("float64 support:")
    for name in backends:
        print(f"  {name:6s} {_float64_support(name)}")
    print("jax devices:")
    platforms = jax_platforms()
    for platform, devices in platforms.items():
        print(f"  {platform}: {', '.join(devices)}")
    if not platforms:
        print("  none (jax not installed)")
    mesh = jax_mesh()
    if mesh is not None:
        print(f"jax mesh of fit(devices='all'): {_mesh_line(mesh)}")
    threads = thread_counts()
    print("threads:")
    print(f"  CPUs usable by this process: {threads['cpus_usable']}")
    print(f"  numba: {threads['numba']} (threading layer {threads.get('numba_threading_layer')})")
    for pool in threads["blas"] or []:
        print(f"  {pool['library']} ({pool['file']}): {pool['threads']}")
    print(f"numba cache dir: {numba_cache_dir()}")
    print('backend="auto" picks (float64; see fastgd.auto):')
    for line in _auto_lines():
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastgd`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    return _compare(args, args.subparser)


if __name__ == "__main__":
    sys.exit(main())
