"""Robustness of the benchmark harness: signals, cleanup, host checks and exit status.

These tests run no load. Child processes are ``sleep`` commands, and the HTTP
servers are small ``http.server`` instances on 127.0.0.1 that the tests start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import cli, commands, external, processes, redis_server, runner
from benchmarks.arguments import build_parser
from benchmarks.client_suites import LabeledMeasurement
from benchmarks.measure import Measurement
from benchmarks.options import MAX_STORED_SESSIONS, Options, SoakOptions
from benchmarks.processes import Child, Supervisor, termination_as_interrupt
from benchmarks.results import RunResult
from benchmarks.runner import supervised_run
from benchmarks.soak import SoakResult
from benchmarks.suites import SessionsStep

REPOSITORY = Path(__file__).resolve().parents[1]
# A documentation address (RFC 5737), which the checks reject before connecting.
REMOTE_HOST = "192.0.2.10"

# A harness stand-in: it starts one child that ignores SIGTERM, so the cleanup
# takes STOP_TIMEOUT_SECONDS before SIGKILL, and one plain child. It prints the
# run directory and the process group ids, then waits for a signal.
INTERRUPTED_HARNESS = """
import logging, sys, time
from benchmarks import processes
from benchmarks.runner import supervised_run

processes.STOP_TIMEOUT_SECONDS = 2.0
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
try:
    with supervised_run(keep_logs=False) as supervisor:
        plain = supervisor.start("plain", ["sleep", "30"])
        stubborn = supervisor.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 30"])
        print(supervisor.log_dir, plain.pid, stubborn.pid, flush=True)
        time.sleep(30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""

# A harness stand-in that starts one child and then waits to be killed.
KILLED_HARNESS = """
import sys, time
from pathlib import Path
from benchmarks.processes import Supervisor

supervisor = Supervisor(Path(sys.argv[1]))
child = supervisor.start("sleeper", ["sleep", "30"])
print(child.pid, flush=True)
time.sleep(30)
"""


def is_running(pid: int) -> bool:
    """Return True if the process exists and is neither a zombie nor dead."""
    fields = processes.read_stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def start_harness(
    script: str, temp_dir: Path, *arguments: str
) -> subprocess.Popen[str]:
    """Start a harness stand-in whose run directory goes under ``temp_dir``."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *arguments],
        cwd=REPOSITORY,
        env={**os.environ, "TMPDIR": str(temp_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``tempfile.mkdtemp`` create the run directory under ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@dataclass
class FailedRun:
    """Run directory and children of a supervised run that raised."""

    run_dir: Path | None = None
    children: list[Child] = field(default_factory=list)


def fail_run(
    error: BaseException,
    record: FailedRun,
    *,
    children: int = 0,
    files: Sequence[str] = (),
) -> None:
    """Start ``children`` sleeps and write ``files`` in a supervised run, then raise."""
    with supervised_run(False) as supervisor:
        record.run_dir = supervisor.log_dir
        for name in files:
            (supervisor.log_dir / name).write_text("Bearer secret\n")
        for index in range(children):
            child = supervisor.start(f"sleeper{index}", ["sleep", "30"])
            record.children.append(child)
        raise error


def parse(arguments: list[str]) -> Options:
    return cli.build_run_options(build_parser().parse_args(arguments), "test")


def parse_soak(arguments: list[str]) -> SoakOptions:
    args = build_parser().parse_args(["soak", "--minutes", "1", *arguments])
    return cli.build_soak_options(args, "test")


# Signals and stopping children


def test_supervised_run_second_signal_still_stops_all(tmp_path: Path) -> None:
    harness = start_harness(INTERRUPTED_HARNESS, tmp_path)
    groups: list[int] = []
    try:
        assert harness.stdout is not None
        run_dir, *pids = harness.stdout.readline().split()
        groups = [int(pid) for pid in pids]

        harness.send_signal(signal.SIGTERM)
        # The stubborn child keeps the cleanup busy while more signals arrive.
        time.sleep(0.5)
        harness.send_signal(signal.SIGINT)
        time.sleep(0.2)
        harness.send_signal(signal.SIGTERM)
        harness.send_signal(signal.SIGHUP)
        stdout, stderr = harness.communicate(timeout=20)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
        for pgid in groups:
            kill_group(pgid)

    assert stdout.strip() == "interrupted"
    assert "stopped every process that the harness started" in stderr
    assert "failed to stop" not in stderr
    for pgid in groups:
        assert processes.live_group_pids(pgid) == []
    assert Path(run_dir).parent == tmp_path
    assert not Path(run_dir).exists()


def test_supervisor_child_terminated_when_harness_killed(tmp_path: Path) -> None:
    harness = start_harness(KILLED_HARNESS, tmp_path, str(tmp_path))
    child_pid = None
    try:
        assert harness.stdout is not None
        child_pid = int(harness.stdout.readline())
        assert is_running(child_pid)

        harness.kill()
        harness.communicate(timeout=10)

        assert wait_until(lambda: not is_running(child_pid), timeout=5.0)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
        if child_pid is not None:
            kill_group(child_pid)


def test_stop_all_ignores_signals_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = Supervisor(tmp_path)
    first = supervisor.start("first", ["sleep", "30"])
    second = supervisor.start("second", ["sleep", "30"])
    real_stop = processes.stop_process_group

    def stop_after_signal(process: subprocess.Popen[bytes]) -> bool:
        os.kill(os.getpid(), signal.SIGINT)
        return real_stop(process)

    monkeypatch.setattr(processes, "stop_process_group", stop_after_signal)
    try:
        with termination_as_interrupt():
            running = supervisor.stop_all()
    finally:
        monkeypatch.undo()
        supervisor.stop_all()

    assert running == []
    assert supervisor.children == []
    assert not is_running(first.pid)
    assert not is_running(second.pid)


def test_stop_all_returns_children_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = Supervisor(tmp_path)
    child = supervisor.start("sleeper", ["sleep", "30"])
    monkeypatch.setattr(processes, "stop_process_group", lambda process: False)
    try:
        running = supervisor.stop_all()
    finally:
        monkeypatch.undo()
        supervisor.stop_all()

    assert running == [child]


def test_supervised_run_names_children_left_running(
    private_tempdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="benchmarks")
    record = FailedRun()
    monkeypatch.setattr(processes, "stop_process_group", lambda process: False)
    try:
        with pytest.raises(KeyboardInterrupt):
            fail_run(KeyboardInterrupt(), record, children=1)
    finally:
        monkeypatch.undo()
        for child in record.children:
            processes.stop_process_group(child.process)

    assert "failed to stop sleeper0 (pid" in caplog.text
    assert "stopped every process" not in caplog.text


def test_stop_process_group_kills_members_left_by_leader(tmp_path: Path) -> None:
    # The shell exits at once and leaves its background sleep in the group.
    process = subprocess.Popen(
        ["sh", "-c", "sleep 30 >/dev/null & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=10)
        member = int(stdout)
        assert is_running(member)

        stopped = processes.stop_process_group(process)
    finally:
        kill_group(process.pid)

    assert stopped
    assert not is_running(member)


# The temporary run directory


def test_supervised_run_success_removes_directory(private_tempdir: Path) -> None:
    with supervised_run(False) as supervisor:
        (supervisor.log_dir / "server.log").write_text("log")
        run_dir = supervisor.log_dir

    assert run_dir.parent == private_tempdir
    assert not run_dir.exists()


def test_supervised_run_interrupt_removes_directory(private_tempdir: Path) -> None:
    record = FailedRun()
    with pytest.raises(KeyboardInterrupt):
        fail_run(
            KeyboardInterrupt(), record, children=1, files=["headers-external.txt"]
        )

    assert record.run_dir is not None
    assert not record.run_dir.exists()
    assert not is_running(record.children[0].pid)


def test_supervised_run_failure_keeps_logs_only(private_tempdir: Path) -> None:
    record = FailedRun()
    files = ["headers-external.txt", "headers-asgi-bearer_mw.txt", "server.log"]
    with pytest.raises(RuntimeError):
        fail_run(RuntimeError("server failed"), record, files=files)

    assert record.run_dir is not None
    assert sorted(path.name for path in record.run_dir.iterdir()) == ["server.log"]


def test_supervised_run_empty_failure_removes_directory(
    private_tempdir: Path,
) -> None:
    record = FailedRun()
    with pytest.raises(RuntimeError):
        fail_run(RuntimeError("failed before any child started"), record)

    assert record.run_dir is not None
    assert not record.run_dir.exists()


def test_supervised_run_keep_logs_deletes_headers(private_tempdir: Path) -> None:
    with supervised_run(True) as supervisor:
        run_dir = supervisor.log_dir
        (run_dir / "headers-external.txt").write_text("Bearer secret\n")
        (run_dir / "server.log").write_text("log")

    assert sorted(path.name for path in run_dir.iterdir()) == ["server.log"]


# Option checks


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        pytest.param(
            [
                "--url=http://127.0.0.1:8000/me",
                "--login-url=http://127.0.0.1:8000/login",
                f"--redis-url=redis://{REMOTE_HOST}:6379/0",
            ],
            "--redis-url",
            id="remote-redis-with-loopback-login",
        ),
        pytest.param(
            [
                "--url=http://127.0.0.1:8000/me",
                f"--login-url=http://{REMOTE_HOST}/login",
            ],
            "--login-url",
            id="remote-login",
        ),
        pytest.param(
            [f"--url=http://{REMOTE_HOST}/me", "--token=t"], "--url", id="remote-url"
        ),
        pytest.param(
            [f"--cluster-url=redis+cluster://127.0.0.1:7000,{REMOTE_HOST}:7001"],
            "--cluster-url",
            id="remote-cluster-node",
        ),
    ],
)
def test_build_run_options_rejects_remote_host(
    arguments: list[str], option: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse(["run", "--no-pin", *arguments])

    assert option in str(raised.value)
    assert REMOTE_HOST in str(raised.value)


def test_build_run_options_allows_remote_host_on_request() -> None:
    options = parse(
        [
            "run",
            "--no-pin",
            "--allow-remote-host",
            f"--url=http://{REMOTE_HOST}/me",
            "--token=t",
            f"--redis-url=redis://{REMOTE_HOST}:6379/0",
        ]
    )

    assert options.url == f"http://{REMOTE_HOST}/me"


def test_build_run_options_server_pid_needs_url() -> None:
    with pytest.raises(SystemExit, match="--server-pid needs --url"):
        parse(["run", "--no-pin", f"--server-pid={os.getpid()}"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--seed-sessions=0"], "--seed-sessions", id="no-sessions"),
        pytest.param(
            [f"--seed-sessions={MAX_STORED_SESSIONS + 1}"],
            "--seed-sessions",
            id="too-many-sessions",
        ),
        pytest.param(["--wsgi-threads=0"], "--wsgi-threads", id="no-threads"),
        pytest.param(["--wsgi-threads=257"], "--wsgi-threads", id="too-many-threads"),
        pytest.param(
            [f"--redis-url=redis://{REMOTE_HOST}:6379/0"],
            "not a loopback address",
            id="remote-redis",
        ),
    ],
)
def test_build_soak_options_rejects(arguments: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_soak(["--no-pin", *arguments])


def test_build_soak_options_remote_redis_names_no_option() -> None:
    with pytest.raises(SystemExit) as raised:
        parse_soak(["--no-pin", f"--redis-url=redis://{REMOTE_HOST}:6379/0"])

    message = str(raised.value)
    assert "has no option for other hosts" in message
    assert "--allow-remote-host" not in message


def test_require_allowed_host_names_remote_option() -> None:
    with pytest.raises(ValueError, match="unless --allow-remote-host is given"):
        redis_server.require_allowed_host(
            f"redis://{REMOTE_HOST}:6379/0", allow_remote=False, what="--redis-url"
        )


def test_require_allowed_host_accepts_loopback() -> None:
    redis_server.require_allowed_host(
        "redis://127.0.0.1:6379/0",
        allow_remote=False,
        what="--redis-url",
        remote_option=None,
    )


def test_describe_pinning_names_private_redis() -> None:
    text = runner.describe_pinning(0, 1, 1)

    assert text == ("servers on CPU 0, load generator on CPU 1, private Redis on CPU 1")


def test_describe_pinning_without_private_redis() -> None:
    text = runner.describe_pinning(0, 1, None)

    assert "private Redis" not in text
    assert text.endswith("Redis from --redis-url, not pinned")


def test_describe_pinning_not_pinned() -> None:
    assert runner.describe_pinning(None, None, None) == "not pinned"


def test_build_soak_options_accepts_defaults() -> None:
    options = parse_soak(["--no-pin"])

    assert options.seed_sessions == 1000
    assert options.wsgi_threads == 4


# Logging


LOGGING_SCRIPT = """
import logging, sys
from benchmarks.cli import configure_logging

configure_logging(verbose=sys.argv[1] == "verbose")
logging.getLogger("a_library").debug("library debug")
logging.getLogger("a_library").info("library info")
logging.getLogger("benchmarks.runner").debug("harness debug")
"""


def logged_lines(verbose: bool) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT, "verbose" if verbose else "quiet"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stderr


def test_configure_logging_verbose_only_harness_debug() -> None:
    stderr = logged_lines(verbose=True)

    assert "harness debug" in stderr
    assert "library info" in stderr
    assert "library debug" not in stderr


def test_configure_logging_default_no_debug() -> None:
    stderr = logged_lines(verbose=False)

    assert "library info" in stderr
    assert "harness debug" not in stderr


# The login request


class LoginServer(ThreadingHTTPServer):
    """A loopback server that records each request path and sends a fixed reply."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), LoginHandler)
        self.reply = (status, headers, body)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class LoginHandler(BaseHTTPRequestHandler):
    server: LoginServer

    def do_POST(self) -> None:
        self.server.paths.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, headers, body = self.server.reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[int, dict[str, str], bytes], LoginServer]]:
    """Start login servers on loopback threads, and stop them after the test."""
    started: list[tuple[LoginServer, threading.Thread]] = []

    def start(status: int, headers: dict[str, str], body: bytes) -> LoginServer:
        server = LoginServer(status, headers, body)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def login_options(login_url: str) -> Options:
    return parse(
        [
            "run",
            "--no-pin",
            "--url=http://127.0.0.1:9/me",
            f"--login-url={login_url}",
            '--login-body={"user": "a"}',
        ]
    )


def token_body(token: str) -> bytes:
    return json.dumps({"access_token": token}).encode()


def test_fetch_token_rejects_redirect(
    serve: Callable[[int, dict[str, str], bytes], LoginServer],
) -> None:
    target = serve(200, {}, token_body("from-target"))
    redirect = serve(307, {"Location": f"{target.url}/login"}, b"")

    with pytest.raises(RuntimeError, match="307 redirect"):
        external.fetch_token(login_options(f"{redirect.url}/login"))

    assert redirect.paths == ["/login"]
    assert target.paths == []


def test_fetch_token_ignores_proxy_variables(
    serve: Callable[[int, dict[str, str], bytes], LoginServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = serve(200, {}, token_body("from-app"))
    proxy = serve(200, {}, token_body("from-proxy"))
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    token = external.fetch_token(login_options(f"{app.url}/login"))

    assert token == "from-app"
    assert proxy.paths == []


# Exit status of run and the soak start line


def make_measurement(
    variant: str, unexpected: dict[int, int], socket_errors: int
) -> Measurement:
    return Measurement(
        variant=variant,
        connections=64,
        stored_sessions=None,
        generator="wrk",
        requests=1000,
        requests_per_second=500.0,
        latency_p50_ms=1.0,
        latency_p99_ms=2.0,
        expected_non_2xx=0,
        unexpected_statuses=unexpected,
        socket_errors=socket_errors,
        redis_commands_per_request=None,
    )


def empty_result() -> RunResult:
    return RunResult(
        command="test", started_at="s", finished_at="f", machine={}, settings={}
    )


def test_failed_measurements_covers_every_suite() -> None:
    result = empty_result()
    result.comparison = [
        make_measurement("asgi:bare", {}, 0),
        make_measurement("asgi:bearer_mw", {500: 3}, 0),
    ]
    result.concurrency = [make_measurement("asgi:raw-get", {}, 2)]
    result.sessions = [
        SessionsStep(1000, 1.0, 1.0, [make_measurement("wsgi:bearer_mw", {502: 1}, 0)])
    ]
    result.pools = [
        LabeledMeasurement("from_url", "d", make_measurement("asgi:pool", {}, 1))
    ]
    result.cluster = [
        LabeledMeasurement("cluster", "d", make_measurement("asgi:c", {}, 0))
    ]

    names = [name for name, _ in commands.failed_measurements(result)]

    assert names == [
        "asgi:bearer_mw",
        "asgi:raw-get",
        "wsgi:bearer_mw with 1,000 sessions",
        "asgi:pool (from_url)",
    ]


@pytest.mark.parametrize(
    ("unexpected", "socket_errors", "status"),
    [
        pytest.param({}, 0, 0, id="clean"),
        pytest.param({500: 10}, 0, 1, id="unexpected-status"),
        pytest.param({}, 4, 1, id="socket-errors"),
    ],
)
def test_run_exit_status(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unexpected: dict[int, int],
    socket_errors: int,
    status: int,
) -> None:
    result = empty_result()
    result.comparison = [make_measurement("asgi:bare", unexpected, socket_errors)]
    monkeypatch.setattr(commands, "run_local", lambda options: result)
    monkeypatch.setattr(commands, "write_plots", lambda result, directory: [])
    monkeypatch.setattr(commands, "render_results_page", lambda result: "page\n")
    options = parse(["run", "--no-pin", f"--results-dir={tmp_path}"])

    assert commands.run(options) == status
    assert (tmp_path / "latest.json").exists()


def test_soak_logs_start_before_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="benchmarks")
    options = parse_soak(["--no-pin", f"--results-dir={tmp_path}"])
    logged_before_load: list[bool] = []

    def fake_soak(soak_options: SoakOptions) -> SoakResult:
        logged_before_load.append("expected to end at about" in caplog.text)
        return SoakResult("test", "asgi:bearer_mw", "s", "f", 1.0, 16, "wrk")

    monkeypatch.setattr(commands, "run_soak", fake_soak)

    assert commands.soak(options) == 0
    assert logged_before_load == [True]


def test_run_settings_names_round_order() -> None:
    options = parse(["run", "--no-pin"])

    settings = runner.run_settings(options, "wrk", None)

    assert settings["round order"] == runner.ROUND_ORDER
    assert settings["CPU pinning"] == "not pinned"


def test_run_settings_redis_url_not_private() -> None:
    options = parse(["run", "--redis-url", "redis://127.0.0.1:6390/0"])

    settings = runner.run_settings(options, "wrk", None)

    assert settings["Redis"] == "--redis-url"
    assert "private Redis" not in settings["CPU pinning"]
