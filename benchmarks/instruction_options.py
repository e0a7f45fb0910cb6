"""Command line of ``python -m benchmarks.instructions``: options and their limits."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cli import check_range
from benchmarks.options import DEFAULT_RESULTS_DIR
from benchmarks.variants import VARIANTS_BY_NAME, Variant

DEFAULT_VARIANTS = tuple(
    f"{interface}:{label}"
    for interface in ("wsgi", "asgi")
    for label in ("bare", "raw-get", "bearer_mw", "bearer_mw-missing", "bearer_mw-lazy")
)
# Variants whose header needs only the one seeded token of each scheme.
SUPPORTED_VARIANTS = (
    *DEFAULT_VARIANTS,
    "wsgi:bearer_mw-malformed",
    "asgi:bearer_mw-malformed",
)
DEFAULT_REQUESTS = 200
DEFAULT_WARMUP = 20
MAX_REQUESTS = 100_000
MAX_REPEATS = 10
MAX_JOBS = 64


@dataclass(frozen=True)
class InstructionOptions:
    """Settings of one run, described in the help text of ``build_parser``."""

    command: str
    variants: list[Variant]
    requests: int
    warmup: int
    repeats: int
    jobs: int
    results_dir: Path
    keep_logs: bool
    verbose: bool


def parse_variants(text: str) -> list[Variant]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SUPPORTED_VARIANTS]
    if unknown:
        choices = ", ".join(SUPPORTED_VARIANTS)
        raise SystemExit(
            f"error: invalid variant {unknown[0]!r}. Choose from {choices}"
        )
    if not names:
        raise SystemExit("error: --variants names no variant")
    return [VARIANTS_BY_NAME[name] for name in dict.fromkeys(names)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description="Count instructions per request of each app variant under "
        "callgrind, with a private redis-server on loopback.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help="measured requests in the short run. The long run sends twice as many "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help="requests before the measured ones in every run (default %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="pairs of runs per variant. With more than one, the table shows the "
        "median and the spread (default %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="callgrind runs at once (default: the usable cores, %(default)s)",
    )
    parser.add_argument(
        "--variants",
        type=parse_variants,
        default=list(map(VARIANTS_BY_NAME.__getitem__, DEFAULT_VARIANTS)),
        help="comma-separated variant names (default: "
        + ",".join(DEFAULT_VARIANTS)
        + "; also "
        + ",".join(SUPPORTED_VARIANTS[len(DEFAULT_VARIANTS) :])
        + ")",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help="directory for instructions.md and instructions.json "
        "(default benchmarks/results)",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the temporary directory with the children's logs",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log the command line of every child and each finished run",
    )
    return parser


def build_options(arguments: Sequence[str]) -> InstructionOptions:
    args = build_parser().parse_args(arguments)
    check_range("--requests", args.requests, 1, MAX_REQUESTS)
    check_range("--warmup", args.warmup, 0, MAX_REQUESTS)
    check_range("--repeats", args.repeats, 1, MAX_REPEATS)
    check_range("--jobs", args.jobs, 1, MAX_JOBS)
    return InstructionOptions(
        command=shlex.join(["python", "-m", "benchmarks.instructions", *arguments]),
        variants=args.variants,
        requests=args.requests,
        warmup=args.warmup,
        repeats=args.repeats,
        jobs=args.jobs,
        results_dir=args.results_dir,
        keep_logs=args.keep_logs,
        verbose=args.verbose,
    )
