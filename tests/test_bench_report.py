"""The harness's per-round ratios, target checks, stored-sessions rounds and
command counts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bearer_mw import redis_from_url
from benchmarks import client_suites, measure, redis_server, suites
from benchmarks.arguments import build_parser
from benchmarks.cli import build_run_options
from benchmarks.client_suites import LabeledMeasurement
from benchmarks.command_counts import OperationCommands, probe_operation_commands
from benchmarks.measure import Measurement, combine_rounds
from benchmarks.memory import MemoryProbe
from benchmarks.ratios import paired_ratio, spread_cell
from benchmarks.report import comparison_table, sessions_table
from benchmarks.results import RunResult
from benchmarks.suites import SessionsStep
from benchmarks.targets import TargetCheck, check_targets
from benchmarks.variants import VARIANTS_BY_NAME, Variant


def measured(
    variant: str,
    rate: float,
    *,
    commands: float | None = 1.0,
    connections: int = 64,
    unexpected: dict[int, int] | None = None,
) -> Measurement:
    return Measurement(
        variant=variant,
        connections=connections,
        stored_sessions=1000,
        generator="wrk",
        requests=int(rate * 10),
        requests_per_second=rate,
        latency_p50_ms=1.0,
        latency_p99_ms=2.0,
        expected_non_2xx=0,
        unexpected_statuses=unexpected or {},
        socket_errors=0,
        redis_commands_per_request=commands,
        redis_commands_by_name={"get": commands} if commands else {},
    )


def rounds_of(variant: str, rates: list[float], commands: float = 1.0) -> Measurement:
    return combine_rounds(
        [measured(variant, rate, commands=commands) for rate in rates]
    )


def run_result(**figures: Any) -> RunResult:
    return RunResult(
        command="python -m benchmarks",
        started_at="2026-12-04T00:00:00+00:00",
        finished_at="2026-12-04T00:10:00+00:00",
        machine={},
        settings={},
        **figures,
    )


def by_target(checks: list[TargetCheck]) -> dict[str, TargetCheck]:
    return {check.target: check for check in checks}


# --- per-round ratios ---------------------------------------------------------


def test_paired_ratio_divides_round_by_round() -> None:
    # A machine that slowed down in round 2 slowed both variants: the ratio of
    # medians (1.0 / 1.0) would hide that ours was 10 % slower in every round.
    ours = rounds_of("asgi:bearer_mw", [900, 450, 900])
    base = rounds_of("asgi:raw-get", [1000, 500, 1000])

    ratio = paired_ratio(ours, base)

    assert ratio is not None
    assert ratio.median == pytest.approx(0.9)
    assert ratio.low == pytest.approx(0.9)
    assert ratio.high == pytest.approx(0.9)
    assert ratio.rounds == 3


def test_paired_ratio_median_resists_one_spoiled_round() -> None:
    ours = rounds_of("wsgi:bearer_mw", [980, 500, 990])
    base = rounds_of("wsgi:raw-get", [1000, 1000, 1000])

    ratio = paired_ratio(ours, base)

    assert ratio is not None
    assert ratio.median == pytest.approx(0.98)
    assert ratio.low == pytest.approx(0.5)
    assert spread_cell(ratio) == "0.50-0.99x (3 rounds)"


def test_paired_ratio_unequal_rounds_falls_back_to_medians() -> None:
    ours = rounds_of("asgi:bearer_mw", [800, 900, 1000])
    base = measured("asgi:raw-get", 1000)

    ratio = paired_ratio(ours, base)

    assert ratio is not None
    assert ratio.median == pytest.approx(0.9)
    assert ratio.rounds == 1
    assert spread_cell(ratio) == "-"


def test_paired_ratio_base_without_requests_is_none() -> None:
    assert paired_ratio(measured("a", 10), measured("b", 0)) is None


def test_comparison_table_shows_per_round_range() -> None:
    rows = [
        rounds_of("wsgi:bare", [2000, 1000, 2000], commands=0.0),
        rounds_of("wsgi:raw-get", [1000, 500, 1000]),
        rounds_of("wsgi:bearer_mw", [960, 470, 990]),
    ]

    rendered = comparison_table(rows)

    line = next(row for row in rendered.splitlines() if "`wsgi:bearer_mw`" in row)
    assert "| 0.96x |" in line
    assert "0.94-0.99x (3 rounds)" in line


# --- targets ------------------------------------------------------------------


def test_check_targets_raw_get_missed_by_shortfall() -> None:
    result = run_result(
        comparison=[
            rounds_of("wsgi:raw-get", [1000, 1000, 1000]),
            rounds_of("wsgi:bearer_mw", [930, 920, 940]),
        ]
    )

    check = by_target(check_targets(result))[
        "WSGI bearer_mw at 0.95x `raw-get` or more"
    ]

    assert check.met is False
    assert check.verdict == "missed by 0.020x"
    assert check.measured.startswith("0.930x")


def test_check_targets_raw_get_met() -> None:
    result = run_result(
        comparison=[
            rounds_of("asgi:raw-get", [1000, 800, 1000]),
            rounds_of("asgi:bearer_mw", [960, 770, 990]),
        ]
    )

    check = by_target(check_targets(result))[
        "ASGI bearer_mw at 0.95x `raw-get` or more"
    ]

    assert check.verdict == "met"


def test_check_targets_unmeasured_is_not_met() -> None:
    checks = check_targets(run_result())

    assert checks
    assert all(check.met is None for check in checks)
    assert {check.verdict for check in checks} == {"not measured"}


def test_check_targets_commands_and_renewal() -> None:
    result = run_result(
        comparison=[
            measured("asgi:bearer_mw", 100, commands=1.0),
            measured("asgi:bearer_mw-missing", 100, commands=0.0),
            measured("asgi:bearer_mw-malformed", 100, commands=0.02),
        ],
        operation_commands=[
            OperationCommands("renew_session", 100, 1.0, {"evalsha": 1.0, "get": 1.0})
        ],
    )

    checks = by_target(check_targets(result))
    renewal = "1 Redis command per renewal: one script call, one round trip"

    assert checks["ASGI: 1 Redis command per validated request"].met is True
    assert checks["ASGI: 0 Redis commands for `bearer_mw-missing`"].met is True
    malformed = checks["ASGI: 0 Redis commands for `bearer_mw-malformed`"]
    assert malformed.met is False
    assert malformed.verdict == "missed by 0.02"
    # One round trip, but it ran a script and a GET at the top level.
    assert checks[renewal].met is True
    result.operation_commands = [
        OperationCommands("renew_session", 100, 2.0, {"evalsha": 1.0, "get": 1.0})
    ]
    assert by_target(check_targets(result))[renewal].met is False


def test_check_targets_commands_leave_out_connection_setup() -> None:
    m = measured("wsgi:bearer_mw", 100, commands=1.01)
    m.redis_commands_by_name = {"get": 1.0, "hello": 0.01}
    assert sum(m.redis_commands_by_name.values()) == pytest.approx(1.01)

    checks = by_target(check_targets(run_result(comparison=[m])))

    assert checks["WSGI: 1 Redis command per validated request"].met is True


def test_check_targets_errors_make_ratio_missed() -> None:
    failing = measured("asgi:bearer_mw", 5000, unexpected={500: 10000})
    result = run_result(comparison=[measured("asgi:raw-get", 1000), failing])

    check = by_target(check_targets(result))[
        "ASGI bearer_mw at 0.95x `raw-get` or more"
    ]

    assert check.met is False
    assert check.verdict.startswith("missed: 10,000 unexpected statuses")


@pytest.mark.parametrize(
    ("rate", "shown", "verdict"),
    [
        pytest.param(949.7, "0.949x", "missed by 0.001x", id="just-below"),
        pytest.param(949.0, "0.949x", "missed by 0.001x", id="below"),
        pytest.param(950.0, "0.950x", "met", id="equal"),
    ],
)
def test_check_targets_ratio_never_rounds_up(
    rate: float, shown: str, verdict: str
) -> None:
    result = run_result(
        comparison=[measured("wsgi:raw-get", 1000), measured("wsgi:bearer_mw", rate)]
    )

    check = by_target(check_targets(result))[
        "WSGI bearer_mw at 0.95x `raw-get` or more"
    ]

    assert check.measured == shown
    assert check.verdict == verdict


def test_check_targets_memory_limit() -> None:
    probe = MemoryProbe(
        sessions_for_user=10,
        keys_per_session=1.0,
        session_key_bytes=180.0,
        per_user_keys=["bmw:u:{x}"],
        per_user_bytes_one_session=130,
        per_user_bytes=400,
        bytes_per_session_with_index=220.0,
    )

    checks = check_targets(run_result(memory=probe))

    alone = next(
        check for check in checks if check.target.endswith("1 session per user")
    )
    shared = next(
        check for check in checks if check.target.endswith("10 sessions per user")
    )
    assert (alone.met, alone.verdict) == (False, "missed by 10 B")
    assert shared.met is True


def test_check_targets_sessions_largest_count() -> None:
    steps = [
        SessionsStep(1000, 300.0, 150.0, [rounds_of("asgi:bearer_mw", [1000, 900])]),
        SessionsStep(10**6, 300.0, 150.0, [rounds_of("asgi:bearer_mw", [930, 840])]),
    ]

    checks = by_target(check_targets(run_result(sessions=steps)))

    check = checks["ASGI bearer_mw with 1,000,000 sessions at 0.95x or more of 1,000"]
    assert check.met is False
    assert check.measured.startswith("0.931x")


def test_check_targets_high_concurrency_counts_errors() -> None:
    result = run_result(
        concurrency=[
            measured("asgi:bearer_mw", 100, connections=256, unexpected={503: 2}),
            measured("asgi:raw-get", 100, connections=256, unexpected={500: 5}),
        ],
        pools=[
            LabeledMeasurement(
                "default", "pool", measured("asgi:bearer_mw", 100, connections=256)
            )
        ],
    )

    (check,) = [c for c in check_targets(result) if "256 connections" in c.target]

    assert check.met is False
    assert check.measured.startswith("2 unexpected")


# --- stored sessions in interleaved rounds ------------------------------------


@dataclass
class FakeContext:
    """Stands in for BenchContext: records what was seeded, started and measured."""

    count_rates: dict[str, float]
    journal: list[str]
    servers: dict[str, object] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    client: object = None

    def empty_database(self) -> None:
        self.journal.append("empty")

    def seed(self, variants: list[Variant], count: int) -> None:
        self.journal.append(f"seed {variants[0].scheme} {count}")

    def server_for(self, app: Any) -> object:
        return self.servers.setdefault(app.name, object())

    def measure_variant(self, variant: Variant, connections: int) -> Measurement:
        self.journal.append(f"measure {variant.name}")
        return measured(variant.name, self.count_rates[variant.name])


def test_run_sessions_interleaves_counts_round_by_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_server, "used_memory_bytes", lambda client: 0)
    journal: list[str] = []
    rates = {"asgi:raw-get": 1000.0, "asgi:bearer_mw": 950.0}
    small = FakeContext(rates, journal)
    large = FakeContext({name: rate * 0.98 for name, rate in rates.items()}, journal)
    variants = [VARIANTS_BY_NAME[name] for name in rates]
    contexts: list[tuple[int, Any]] = [(1000, small), (10**6, large)]

    steps = suites.run_sessions(contexts, variants, connections=64, rounds=3)

    measures = [entry for entry in journal if entry.startswith("measure")]
    assert len(measures) == 3 * 2 * 2
    # Every round measures both counts before the next round starts, and every
    # other round measures them in reverse order.
    assert measures[:4] == [
        "measure asgi:raw-get",
        "measure asgi:bearer_mw",
        "measure asgi:raw-get",
        "measure asgi:bearer_mw",
    ]
    assert measures[4:8] == [
        "measure asgi:bearer_mw",
        "measure asgi:raw-get",
        "measure asgi:bearer_mw",
        "measure asgi:raw-get",
    ]
    assert [step.stored_sessions for step in steps] == [1000, 10**6]
    most = {m.variant: m for m in steps[1].measurements}
    assert most["asgi:bearer_mw"].rounds == 3
    assert most["asgi:bearer_mw"].round_rates == [pytest.approx(931.0)] * 3
    table = sessions_table(steps)
    assert "vs 1,000 sessions" in table
    assert "0.98x" in table


def test_run_comparison_reverses_order_every_other_round() -> None:
    journal: list[str] = []
    rates = {"asgi:bare": 2000.0, "asgi:raw-get": 1000.0, "asgi:bearer_mw": 950.0}
    ctx: Any = FakeContext(rates, journal)
    variants = [VARIANTS_BY_NAME[name] for name in rates]

    results = suites.run_comparison(
        ctx, variants, connections=64, rounds=3, seed_sessions=10
    )

    measures = [
        entry.removeprefix("measure ")
        for entry in journal
        if entry.startswith("measure")
    ]
    forward = ["asgi:bare", "asgi:raw-get", "asgi:bearer_mw"]
    assert measures == forward + forward[::-1] + forward
    assert [result.variant for result in results] == forward
    assert all(result.rounds == 3 for result in results)


def test_round_order_keeps_even_rounds() -> None:
    items = [1, 2, 3]

    assert measure.round_order(items, 0) == [1, 2, 3]
    assert measure.round_order(items, 1) == [3, 2, 1]
    assert measure.round_order(items, 2) == [1, 2, 3]
    assert items == [1, 2, 3]


# --- commands per store operation, on a real Redis ----------------------------


def test_probe_operation_commands_counts_one_per_renewal(redis_url: str) -> None:
    client = redis_from_url(redis_url)
    try:
        rows = {row.operation: row for row in probe_operation_commands(client, 20)}
    finally:
        client.close()

    assert rows["validate_session"].by_name == {"get": 1.0}
    assert rows["validate_session"].round_trips_per_call == 1.0
    assert rows["renew_session"].round_trips_per_call == 1.0
    assert rows["renew_session"].by_name["evalsha"] == 1.0
    assert rows["renew_session"].calls == 20
    assert rows["create_session"].round_trips_per_call == 1.0
    assert set(rows) == {
        "create_session",
        "validate_session",
        "renew_session",
        "invalidate_session",
    }


def test_run_result_round_trip(tmp_path: Any) -> None:
    from benchmarks.results import load_result, save_result  # noqa: PLC0415

    original = run_result(
        comparison=[rounds_of("asgi:bearer_mw", [900, 950, 1000])],
        operation_commands=[OperationCommands("renew_session", 5, 1.0, {"evalsha": 1})],
    )

    loaded = load_result(save_result(original, tmp_path).parent)

    assert loaded.comparison[0].round_rates == [900, 950, 1000]
    assert loaded.operation_commands == original.operation_commands
    assert replace(loaded, machine={}) == replace(original, machine={})


def test_run_sessions_in_turn_keeps_no_round_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_server, "used_memory_bytes", lambda client: 0)
    ctx: Any = FakeContext({"asgi:raw-get": 1000.0, "asgi:bearer_mw": 900.0}, [])
    variants = [VARIANTS_BY_NAME[name] for name in ctx.count_rates]

    steps = suites.run_sessions_in_turn(
        ctx, variants, counts=[1000, 5000], connections=64, rounds=3
    )

    measurement = steps[1].measurements[0]
    assert measurement.rounds == 3
    assert measurement.round_rates == []
    assert paired_ratio(measurement, steps[0].measurements[0]) is not None


def test_build_run_options_sorts_session_counts() -> None:
    args = build_parser().parse_args(
        ["run", "--sessions", "5000,1000,5000", "--suites", "sessions"]
    )

    options = build_run_options(args, "test")

    assert options.session_counts == [1000, 5000]


def test_run_interleaved_reverses_order_every_other_round() -> None:
    journal: list[str] = []
    rates = {"asgi:raw-get": 1000.0, "asgi:bearer_mw": 950.0}
    ctx: Any = FakeContext(rates, journal)
    contexts = [
        (ctx, VARIANTS_BY_NAME[name], name, "detail")
        for name in ("asgi:raw-get", "asgi:bearer_mw")
    ]

    results = client_suites.run_interleaved(contexts, connections=64, rounds=3)

    measures = [entry.removeprefix("measure ") for entry in journal]
    forward = ["asgi:raw-get", "asgi:bearer_mw"]
    assert measures == forward + forward[::-1] + forward
    assert [result.label for result in results] == forward
    assert results[1].measurement.round_rates == [pytest.approx(950.0)] * 3
