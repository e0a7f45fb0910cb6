"""The record of one run, stored as ``latest.json`` in the results directory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.client_suites import LabeledMeasurement
from benchmarks.command_counts import OperationCommands
from benchmarks.measure import Measurement
from benchmarks.memory import MemoryProbe
from benchmarks.suites import SessionsStep

RESULT_FILE = "latest.json"


@dataclass
class RunResult:
    """Settings, machine and figures of one ``python -m benchmarks`` run."""

    command: str
    started_at: str
    finished_at: str
    machine: dict[str, str]
    settings: dict[str, Any]
    comparison: list[Measurement] = field(default_factory=list)
    concurrency: list[Measurement] = field(default_factory=list)
    sessions: list[SessionsStep] = field(default_factory=list)
    memory: MemoryProbe | None = None
    operation_commands: list[OperationCommands] = field(default_factory=list)
    pools: list[LabeledMeasurement] = field(default_factory=list)
    cluster: list[LabeledMeasurement] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def save_result(result: RunResult, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / RESULT_FILE
    path.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return path


def load_result(results_dir: Path) -> RunResult:
    """Read ``latest.json``. Raises FileNotFoundError if no run has saved one."""
    data = json.loads((results_dir / RESULT_FILE).read_text())
    sessions = [
        SessionsStep(
            stored_sessions=step["stored_sessions"],
            bearer_mw_bytes_per_session=step["bearer_mw_bytes_per_session"],
            raw_bytes_per_record=step["raw_bytes_per_record"],
            measurements=[measurement_from_json(m) for m in step["measurements"]],
        )
        for step in data.get("sessions", [])
    ]
    memory = data.get("memory")
    return RunResult(
        command=data["command"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        machine=data["machine"],
        settings=data["settings"],
        comparison=[measurement_from_json(m) for m in data.get("comparison", [])],
        concurrency=[measurement_from_json(m) for m in data.get("concurrency", [])],
        sessions=sessions,
        memory=MemoryProbe(**memory) if memory else None,
        operation_commands=[
            OperationCommands(**item) for item in data.get("operation_commands", [])
        ],
        pools=[labeled_from_json(item) for item in data.get("pools", [])],
        cluster=[labeled_from_json(item) for item in data.get("cluster", [])],
        skipped=data.get("skipped", {}),
        notes=data.get("notes", []),
    )


def measurement_from_json(data: dict[str, Any]) -> Measurement:
    fields = dict(data)
    fields["unexpected_statuses"] = {
        int(status): count for status, count in data["unexpected_statuses"].items()
    }
    return Measurement(**fields)


def labeled_from_json(data: dict[str, Any]) -> LabeledMeasurement:
    return LabeledMeasurement(
        label=data["label"],
        detail=data["detail"],
        measurement=measurement_from_json(data["measurement"]),
    )
