"""Charge the samples of raw py-spy output to the code that owns each stack.

A raw line is a stack, outermost frame first, with frames such as
``find_session (bearer_mw/async_store.py:67)`` joined by ``;``, then a space
and the number of samples. A sample goes to the innermost frame whose file
belongs to an owner in ``PACKAGE_OWNERS`` or to the benchmark apps.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from benchmarks.machine import PROJECT_ROOT

OTHER = "other"
OWNERS = ("bearer_mw", "app", "redis-py", "server", "asyncio", OTHER)
# Owner of each top-level package, so redis/asyncio/ belongs to redis-py.
PACKAGE_OWNERS = {
    "bearer_mw": "bearer_mw",
    "redis": "redis-py",
    "uvicorn": "server",
    "h11": "server",
    "gunicorn": "server",
    "asyncio": "asyncio",
}
APP_PACKAGE = ("benchmarks", "apps")
SITE_DIRECTORIES = frozenset({"site-packages", "dist-packages"})
STDLIB_DIRECTORY = re.compile(r"python3\.\d+")
# A raw frame is "function (path:line)", and --nolineno leaves out ":line".
FRAME_PATTERN = re.compile(r"(?P<function>.*) \((?P<path>[^()]*?)(?::[0-9]+)?\)")
COUNT_PATTERN = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Frame:
    """One frame of a raw py-spy stack, without its line number."""

    function: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.function} ({self.path})"


@dataclass
class StackSummary:
    """Samples of one raw py-spy file, by owner and by bearer_mw function."""

    samples: int = 0
    by_owner: Counter[str] = field(default_factory=Counter)
    # Samples owned by bearer_mw, by the innermost bearer_mw function.
    own_by_function: Counter[str] = field(default_factory=Counter)
    # Samples with a bearer_mw function anywhere on the stack, once per sample.
    stack_by_function: Counter[str] = field(default_factory=Counter)
    # Lines without a count, such as the last line of a cut-off file.
    skipped_lines: int = 0

    def share(self, owner: str) -> float:
        return self.by_owner[owner] / self.samples if self.samples else 0.0


def module_path(path: str) -> str:
    """Return ``path`` from its import root on, as py-spy shortens file names.

    py-spy prints ``redis/asyncio/client.py`` for an installed package, but it
    prints absolute paths with ``--full-filenames``, and may for other files.
    """
    posix = PurePosixPath(path)
    if not posix.is_absolute():
        return path
    parts = posix.parts
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] in SITE_DIRECTORIES:
            return "/".join(parts[index + 1 :])
    if posix.is_relative_to(PROJECT_ROOT):
        return posix.relative_to(PROJECT_ROOT).as_posix()
    for index in range(len(parts) - 1, 0, -1):
        if STDLIB_DIRECTORY.fullmatch(parts[index]):
            return "/".join(parts[index + 1 :])
    return path


def path_owner(path: str) -> str | None:
    """Return the owner of a frame's file, or None for files that no owner claims."""
    parts = module_path(path).split("/")
    if tuple(parts[: len(APP_PACKAGE)]) == APP_PACKAGE and len(parts) > 2:
        return "app"
    if len(parts) < 2:
        # A top-level module such as json.py or <frozen runpy>.
        return None
    return PACKAGE_OWNERS.get(parts[0])


def parse_frame(text: str) -> Frame | None:
    """Return the frame of ``function (path:line)``, or None for other entries.

    py-spy also writes process and thread entries into stacks, and a stack
    read while the process ran on can hold an entry without a function name.
    """
    match = FRAME_PATTERN.fullmatch(text)
    if match is None or not match["function"]:
        return None
    return Frame(match["function"], match["path"])


def parse_raw_line(line: str) -> tuple[list[Frame], int] | None:
    """Return the frames, outermost first, and the sample count of a raw line.

    Returns None for a line without a positive count at its end. A count with
    no frames before it is a sample in which py-spy found no Python frame.
    """
    stack, _, count_text = line.strip().rpartition(" ")
    if not COUNT_PATTERN.fullmatch(count_text) or int(count_text) == 0:
        return None
    frames = [parse_frame(entry) for entry in stack.split(";") if entry]
    return [frame for frame in frames if frame is not None], int(count_text)


def owning_frame(frames: Sequence[Frame]) -> tuple[str, Frame | None]:
    """Return the owner of a sample and the innermost frame that has one.

    Frames of other code, such as the standard library, count for their
    nearest caller that has an owner. A stack without such a caller is "other".
    """
    for frame in reversed(frames):
        owner = path_owner(frame.path)
        if owner is not None:
            return owner, frame
    return OTHER, None


def summarise_stacks(lines: Iterable[str]) -> StackSummary:
    """Count the samples of raw py-spy lines by owner and by bearer_mw function."""
    summary = StackSummary()
    for line in lines:
        if not line.strip():
            continue
        parsed = parse_raw_line(line)
        if parsed is None:
            summary.skipped_lines += 1
            continue
        frames, count = parsed
        owner, frame = owning_frame(frames)
        summary.samples += count
        summary.by_owner[owner] += count
        if owner == "bearer_mw" and frame is not None:
            summary.own_by_function[frame.key] += count
        on_stack = {f.key for f in frames if path_owner(f.path) == "bearer_mw"}
        for key in on_stack:
            summary.stack_by_function[key] += count
    return summary


def owner_cpu_us(share: float, cpu_us_per_request: float | None) -> float | None:
    """Return ``share`` of the CPU per request, or None where the CPU is unknown."""
    return None if cpu_us_per_request is None else share * cpu_us_per_request


def top_functions(summary: StackSummary, limit: int) -> list[tuple[str, int, int]]:
    """Return (function, own samples, samples on stack) of the busiest functions."""
    ranked = sorted(
        summary.stack_by_function,
        key=lambda key: (
            -summary.own_by_function[key],
            -summary.stack_by_function[key],
            key,
        ),
    )
    return [
        (key, summary.own_by_function[key], summary.stack_by_function[key])
        for key in ranked[:limit]
    ]
