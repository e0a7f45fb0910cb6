"""The py-spy profile: owner rules, raw-line parsing, arithmetic, pages and a run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import profile
from benchmarks.docs_page import profile_sections
from benchmarks.machine import PROJECT_ROOT
from benchmarks.measure import Measurement
from benchmarks.processes import Child, Supervisor
from benchmarks.profile_report import (
    GTHREAD_CAVEAT,
    GUNICORN_WORKER,
    VariantProfile,
    render_page,
    run_notes,
)
from benchmarks.profile_stacks import (
    OTHER,
    OWNERS,
    Frame,
    StackSummary,
    owner_cpu_us,
    parse_raw_line,
    path_owner,
    summarise_stacks,
    top_functions,
)
from benchmarks.py_spy import AttachError, check_can_attach, find_py_spy

# Frames that a uvicorn stack starts with, outermost first.
LOOP = (
    "Runner.run (asyncio/runners.py:118);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);"
    "Handle._run (asyncio/events.py:80)"
)
MIDDLEWARE = (
    "RequestResponseCycle.run_asgi (uvicorn/protocols/http/h11_impl.py:407);"
    "AsyncBearerMiddleware.__call__ (bearer_mw/asgi.py:143)"
)
FIND = "AsyncSessionStore.find_session (bearer_mw/async_store.py:67)"

CANNED_LINES = [
    # redis.asyncio belongs to redis-py, not to asyncio.
    f"{LOOP};{MIDDLEWARE};{FIND};Redis.execute_command (redis/asyncio/client.py:979) 7",
    # asyncio code that redis-py calls belongs to asyncio.
    f"{LOOP};{MIDDLEWARE};{FIND};"
    "BlockingConnectionPool.get_connection (redis/asyncio/connection.py:3651);"
    "_ContextManagerMixin.__aenter__ (asyncio/locks.py:14) 3",
    # The standard library counts for its nearest owned caller.
    f"{LOOP};{MIDDLEWARE};"
    "token_digest (bearer_mw/tokens.py:40);"
    "dumps (json/__init__.py:238) 5",
    # Line numbers differ, the function is the same.
    f"{LOOP};{MIDDLEWARE};token_digest (bearer_mw/tokens.py:41) 2",
    f"{LOOP};{MIDDLEWARE};me (benchmarks/apps/asgi.py:30) 4",
    f"{LOOP};validate (h11/_util.py:87) 6",
    f"{LOOP} 9",
    "_run_module_as_main (<frozen runpy>:198);_run_code (<frozen runpy>:88) 1",
    # A sample with no Python frame.
    " 2",
    "",
    # A line cut short by a stopped py-spy: no count.
    f"{LOOP};Redis.execute_comm",
]


def measurement_with(cpu_us: float | None, **overrides: Any) -> Measurement:
    fields: dict[str, Any] = {
        "variant": "asgi:bearer_mw",
        "connections": 64,
        "stored_sessions": 1000,
        "generator": "wrk",
        "requests": 40_000,
        "requests_per_second": 2000.0,
        "latency_p50_ms": 10.0,
        "latency_p99_ms": 30.0,
        "expected_non_2xx": 0,
        "unexpected_statuses": {},
        "socket_errors": 0,
        "redis_commands_per_request": 1.0,
        "server_cpu_us_per_request": cpu_us,
        "server_cpu_share": 0.8,
    }
    fields.update(overrides)
    return Measurement(**fields)


def canned_profile(
    variant: str = "asgi:bearer_mw",
    sampled_process: str = "uvicorn",
    cpu_us: float | None = 200.0,
) -> VariantProfile:
    summary = summarise_stacks(CANNED_LINES)
    return VariantProfile(
        variant, sampled_process, summary, measurement_with(cpu_us), 48, 0
    )


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        pytest.param("bearer_mw/async_store.py", "bearer_mw", id="bearer_mw"),
        pytest.param("benchmarks/apps/asgi.py", "app", id="app"),
        pytest.param("redis/asyncio/client.py", "redis-py", id="redis-asyncio"),
        pytest.param("redis/_parsers/hiredis.py", "redis-py", id="redis-parser"),
        pytest.param("uvicorn/protocols/http/h11_impl.py", "server", id="uvicorn"),
        pytest.param("h11/_util.py", "server", id="h11"),
        pytest.param("gunicorn/workers/gthread.py", "server", id="gunicorn"),
        pytest.param("asyncio/locks.py", "asyncio", id="asyncio"),
        pytest.param("json/decoder.py", None, id="stdlib-package"),
        pytest.param("typing.py", None, id="stdlib-module"),
        pytest.param("<frozen runpy>", None, id="frozen"),
        pytest.param("benchmarks/pyload.py", None, id="harness"),
        pytest.param(
            "/srv/.venv/lib/python3.11/site-packages/redis/asyncio/client.py",
            "redis-py",
            id="absolute-site-packages",
        ),
        pytest.param(
            "/usr/lib/python3.11/asyncio/events.py", "asyncio", id="absolute-stdlib"
        ),
        pytest.param(
            str(PROJECT_ROOT / "bearer_mw" / "store.py"),
            "bearer_mw",
            id="absolute-project",
        ),
        pytest.param(
            str(PROJECT_ROOT / "benchmarks" / "apps" / "wsgi.py"),
            "app",
            id="absolute-app",
        ),
    ],
)
def test_path_owner(path: str, owner: str | None) -> None:
    assert path_owner(path) == owner


def test_parse_raw_line_frames_and_count() -> None:
    parsed = parse_raw_line(
        "<module> (uvicorn/__main__.py:4);H11Protocol.handle_events.<locals>"
        ".<listcomp> (uvicorn/protocols/http/h11_impl.py:202) 12\n"
    )

    assert parsed is not None
    frames, count = parsed
    assert count == 12
    assert frames == [
        Frame("<module>", "uvicorn/__main__.py"),
        Frame(
            "H11Protocol.handle_events.<locals>.<listcomp>",
            "uvicorn/protocols/http/h11_impl.py",
        ),
    ]


def test_parse_raw_line_drops_non_frames() -> None:
    parsed = parse_raw_line(
        'process 9120:"python -m gunicorn app:create_app()";'
        " (python3.11:1182708834);"
        "Request.parse (gunicorn/http/message.py:548) 1"
    )

    assert parsed == ([Frame("Request.parse", "gunicorn/http/message.py")], 1)


def test_parse_raw_line_without_line_numbers() -> None:
    parsed = parse_raw_line("decode_live (bearer_mw/records.py) 3")

    assert parsed == ([Frame("decode_live", "bearer_mw/records.py")], 3)


def test_parse_raw_line_empty_stack() -> None:
    assert parse_raw_line(" 15") == ([], 15)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("Handle._run (asyncio/events.py:80)", id="no-count"),
        pytest.param("Handle._run (asyncio/events.py:80);Redis.exe", id="cut-off"),
        pytest.param("Handle._run (asyncio/events.py:80) 0", id="zero-count"),
        pytest.param("Handle._run (asyncio/events.py:80) 2.5", id="fraction"),
        pytest.param("Handle._run (asyncio/events.py:80) \u00b2", id="non-ascii"),
    ],
)
def test_parse_raw_line_rejects_line_without_count(line: str) -> None:
    assert parse_raw_line(line) is None


def test_summarise_stacks_by_owner() -> None:
    summary = summarise_stacks(CANNED_LINES)

    assert summary.samples == 39
    assert summary.by_owner["redis-py"] == 7
    assert summary.by_owner["asyncio"] == 3 + 9
    assert summary.by_owner["bearer_mw"] == 5 + 2
    assert summary.by_owner["app"] == 4
    assert summary.by_owner["server"] == 6
    assert summary.by_owner[OTHER] == 1 + 2
    assert sum(summary.by_owner.values()) == summary.samples


def test_summarise_stacks_counts_skipped_lines() -> None:
    summary = summarise_stacks(CANNED_LINES)

    # The cut-off line counts, but the empty line does not.
    assert summary.skipped_lines == 1


def test_summarise_stacks_bearer_mw_functions() -> None:
    summary = summarise_stacks(CANNED_LINES)

    digest = "token_digest (bearer_mw/tokens.py)"
    call = "AsyncBearerMiddleware.__call__ (bearer_mw/asgi.py)"
    find = "AsyncSessionStore.find_session (bearer_mw/async_store.py)"
    assert summary.own_by_function[digest] == 7
    assert summary.own_by_function[call] == 0
    assert summary.stack_by_function[call] == 7 + 3 + 5 + 2 + 4
    assert summary.stack_by_function[find] == 7 + 3
    assert summary.stack_by_function[digest] == 7


def test_summarise_stacks_recursion_counts_once() -> None:
    line = (
        "walk (bearer_mw/rules.py:10);walk (bearer_mw/rules.py:12);"
        "walk (bearer_mw/rules.py:12) 4"
    )

    summary = summarise_stacks([line])

    assert summary.stack_by_function["walk (bearer_mw/rules.py)"] == 4
    assert summary.own_by_function["walk (bearer_mw/rules.py)"] == 4


def test_summarise_stacks_empty_input() -> None:
    summary = summarise_stacks([])

    assert summary.samples == 0
    assert summary.share("bearer_mw") == 0.0


def test_top_functions_order_and_limit() -> None:
    summary = summarise_stacks(CANNED_LINES)

    ranked = top_functions(summary, 2)

    assert ranked == [
        ("token_digest (bearer_mw/tokens.py)", 7, 7),
        ("AsyncBearerMiddleware.__call__ (bearer_mw/asgi.py)", 0, 21),
    ]


def test_owner_cpu_us_multiplies_share() -> None:
    assert owner_cpu_us(0.25, 200.0) == 50.0


def test_owner_cpu_us_unknown_cpu() -> None:
    assert owner_cpu_us(0.25, None) is None


def test_variant_profile_cpu_us_per_owner() -> None:
    summary = StackSummary(samples=200)
    summary.by_owner.update({"bearer_mw": 30, "redis-py": 50, "server": 120})
    variant = VariantProfile("asgi:bearer_mw", "uvicorn", summary, measurement_with(80))

    assert variant.cpu_us("bearer_mw") == pytest.approx(12.0)
    assert variant.cpu_us("redis-py") == pytest.approx(20.0)
    assert variant.cpu_us("app") == 0.0
    total = sum(variant.cpu_us(owner) or 0.0 for owner in OWNERS)
    assert total == pytest.approx(80.0)


def test_render_page_tables() -> None:
    page = render_page(
        [canned_profile()], "python -m benchmarks.profile", "start", {}, {}, {}
    )

    assert page.startswith("# Where server time goes\n")
    # 3/39 of 200 us is 15.4 us, 7/39 is 35.9 us.
    assert (
        "| `asgi:bearer_mw` | uvicorn | 39 | 2,000 | 200.0 | 80% | 17.9% | 10.3% "
        "| 17.9% | 15.4% | 30.8% | 7.7% |"
    ) in page
    assert (
        "| `asgi:bearer_mw` | 35.9 | 20.5 | 35.9 | 30.8 | 61.5 | 15.4 | 200.0 |"
    ) in page
    assert "## bearer_mw functions in `asgi:bearer_mw`" in page
    assert "| `token_digest (bearer_mw/tokens.py)` | 7 | 17.9% | 35.9 | 7 |" in page


def test_render_page_unknown_cpu() -> None:
    page = render_page([canned_profile(cpu_us=None)], "cmd", "start", {}, {}, {})

    assert "| `asgi:bearer_mw` | - | - | - | - | - | - | - |" in page


def test_render_page_settings_and_machine() -> None:
    page = render_page(
        [canned_profile()],
        "cmd",
        "start",
        {"samples per second": "250"},
        {"cores": "2"},
        {},
    )

    assert (
        "## Settings\n\n| setting | value |\n|---|---|\n| samples per second | 250 |"
        in page
    )
    assert "## Machine\n\n| machine | value |\n|---|---|\n| cores | 2 |" in page


def test_run_notes_gthread_caveat_only_for_gunicorn() -> None:
    asgi = canned_profile()
    wsgi = canned_profile("wsgi:bearer_mw", GUNICORN_WORKER)

    assert GTHREAD_CAVEAT not in run_notes([asgi], {})
    assert GTHREAD_CAVEAT in run_notes([asgi, wsgi], {})


def test_run_notes_problems() -> None:
    variant = canned_profile()
    variant.sampler_errors = 1
    variant.measurement = measurement_with(
        200.0, unexpected_statuses={500: 3}, socket_errors=1
    )

    notes = run_notes([variant], {"asgi:fastapi-users": "fastapi not installed"})

    assert notes == [
        "`asgi:fastapi-users` was skipped: fastapi not installed.",
        "`asgi:bearer_mw`: 3 unexpected statuses {500: 3} and 1 socket error.",
        "`asgi:bearer_mw`: py-spy reported 1 error, and the samples it failed to "
        "read are left out.",
        "`asgi:bearer_mw`: 1 line of the raw file had no sample count.",
    ]


def test_docs_page_embeds_profile(tmp_path: Path) -> None:
    page = render_page([canned_profile()], "cmd", "start", {}, {}, {})
    (tmp_path / "profile.md").write_text(page)

    sections = profile_sections(tmp_path)

    assert sections[0] == "## Where server time goes"
    assert "\n### Samples by owner\n" in sections[2]
    assert "\n## " not in sections[2]
    assert "| `asgi:bearer_mw` | uvicorn | 39 |" in sections[2]


def test_docs_page_without_profile(tmp_path: Path) -> None:
    assert profile_sections(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--rate", "0"], id="rate-zero"),
        pytest.param(["--rate", "5000"], id="rate-too-high"),
        pytest.param(["--duration", "0.5"], id="duration-short"),
        pytest.param(["--connections", "0"], id="no-connections"),
        pytest.param(["--variants", "asgi:nothing"], id="unknown-variant"),
        pytest.param(["--redis-url", "redis://192.0.2.1:6379/0"], id="remote-redis"),
    ],
)
def test_build_options_rejects_invalid_value(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        profile.build_options(argv)


def test_build_options_defaults() -> None:
    options = profile.build_options([])

    assert [variant.name for variant in options.variants] == [
        "asgi:raw-get",
        "asgi:bearer_mw",
        "wsgi:raw-get",
        "wsgi:bearer_mw",
    ]
    assert options.duration == 20.0
    assert options.rate == 250
    assert options.connections == 64
    assert not options.keep_raw
    assert options.command == "python -m benchmarks.profile"


def test_main_without_py_spy_fails_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(shutil, "which", lambda name: None)

    assert profile.main(["--results-dir", str(tmp_path / "out")]) == 1

    assert "py-spy was not found" in caplog.text
    assert not (tmp_path / "out").exists()


def test_main_without_redis_server_fails_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_py_spy = tmp_path / "py-spy"
    fake_py_spy.write_text("#!/bin/sh\nexit 0\n")
    fake_py_spy.chmod(0o755)
    monkeypatch.setattr(
        shutil, "which", lambda name: str(fake_py_spy) if name == "py-spy" else None
    )
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))

    assert profile.main(["--results-dir", str(tmp_path / "out")]) == 1

    assert "redis-server was not found" in caplog.text
    assert not (tmp_path / "out").exists()


def test_check_can_attach_reports_refusal(tmp_path: Path) -> None:
    # Stands in for a py-spy that the kernel does not let attach.
    denying_py_spy = tmp_path / "py-spy"
    denying_py_spy.write_text(
        "#!/bin/sh\necho 'Error: Permission Denied: Try running again with "
        "elevated permissions' >&2\nexit 1\n"
    )
    denying_py_spy.chmod(0o755)

    supervisor = Supervisor(tmp_path)
    try:
        with pytest.raises(AttachError, match="Permission Denied") as raised:
            check_can_attach(str(denying_py_spy), supervisor)
    finally:
        supervisor.stop_all()

    assert "CAP_SYS_PTRACE" in str(raised.value)
    assert "exited with code 1" in str(raised.value)


@pytest.mark.slow
@pytest.mark.usefixtures("redis_installed")
def test_main_profiles_asgi_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    py_spy = find_py_spy()
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    supervisor = Supervisor(probe_dir)
    try:
        check_can_attach(py_spy, supervisor)
    except AttachError as exc:
        pytest.skip(f"py-spy cannot attach to a child process here: {exc}")
    finally:
        supervisor.stop_all()
    results_dir = tmp_path / "results"
    started: list[Child] = []
    original_start = Supervisor.start

    def recording_start(self: Supervisor, *args: Any, **kwargs: Any) -> Child:
        child = original_start(self, *args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(Supervisor, "start", recording_start)
    argv = ["--variants", "asgi:bearer_mw", "--duration", "3", "--warmup", "1"]
    argv += ["--connections", "8", "--results-dir", str(results_dir), "--keep-raw"]

    assert profile.main(argv) == 0

    data = json.loads((results_dir / "profile.json").read_text())
    (variant,) = data["variants"]
    assert variant["variant"] == "asgi:bearer_mw"
    assert variant["sampled_process"] == "uvicorn"
    assert variant["samples"] > 0
    assert variant["samples_by_owner"]["bearer_mw"] > 0
    assert variant["samples_by_owner"]["redis-py"] > 0
    assert sum(variant["share_by_owner"].values()) == pytest.approx(1.0)
    assert variant["server_cpu_us_per_request"] > 0
    assert variant["unexpected_statuses"] == {}
    assert variant["bearer_mw_functions"]
    names = {path.name for path in results_dir.iterdir()}
    assert names == {"profile.md", "profile.json", "profile-asgi-bearer_mw.txt"}
    page = (results_dir / "profile.md").read_text()
    assert "| `asgi:bearer_mw` | uvicorn |" in page
    assert [child.name for child in started if child.process.poll() is None] == []


def test_build_options_remote_redis_names_no_option() -> None:
    with pytest.raises(SystemExit) as raised:
        profile.build_options(["--redis-url", "redis://192.0.2.1:6379/0"])

    message = str(raised.value)
    assert "not a loopback address" in message
    assert "has no option for other hosts" in message
    assert "--allow-remote-host" not in message
