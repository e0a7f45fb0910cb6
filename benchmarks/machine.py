"""A description of the machine and software versions that a run used."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "bearer_mw",
    "redis",
    "hiredis",
    "uvicorn",
    "gunicorn",
    "starlette",
    "fastapi",
    "fastapi-users",
    "flask",
    "flask-httpauth",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "bearer_mw":
            return source_tree_version()
        return "not installed"


def source_tree_version() -> str:
    """Describe a bearer_mw that runs from the source tree without being installed."""
    completed = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    commit = completed.stdout.strip()
    return f"source tree at commit {commit}" if commit else "source tree, no commit"


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "not installed"
    completed = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    )
    first_line = (completed.stdout or completed.stderr).splitlines()[:1]
    return first_line[0].split(" [")[0] if first_line else "unknown"


def machine_info(redis_version: str | None) -> dict[str, str]:
    """Return the cores, CPU model, OS and versions that a results page names."""
    info = {
        "cores": str(os.cpu_count()),
        "usable cores": str(len(os.sched_getaffinity(0))),
        "cpu model": cpu_model(),
        "memory": memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis server": redis_version or "unknown",
        "wrk": wrk_version(),
    }
    for name in PACKAGES:
        info[name] = package_version(name)
    return info


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"
