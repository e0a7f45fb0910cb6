"""End-to-end tests: the demo apps in real server processes, over HTTP.

uvicorn serves the ASGI middleware and gunicorn the WSGI middleware, both
against the ``redis_url`` server, and a last test runs the ``bearer-mw demo``
command itself and pastes its printed curl lines into bash.

The servers import the two factories below from this module, with the Redis
URL in the ``BEARER_MW_TEST_REDIS_URL`` environment variable.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from bearer_mw import AsyncSessionStore, SessionStore
from bearer_mw.client import redis_from_url
from bearer_mw.demo import create_asgi_app, create_wsgi_app
from tests.redis_servers import free_port

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent
URL_VARIABLE = "BEARER_MW_TEST_REDIS_URL"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def asgi_app_from_environment() -> Any:
    """Build the ASGI demo app for uvicorn's ``--factory``."""
    client = redis_from_url(os.environ[URL_VARIABLE], asyncio=True)
    return create_asgi_app(AsyncSessionStore(client), close_client_on_shutdown=True)


def wsgi_app_from_environment() -> Any:
    """Build the WSGI demo app for gunicorn's ``module:factory()`` form."""
    return create_wsgi_app(SessionStore(redis_from_url(os.environ[URL_VARIABLE])))


def stop(process: subprocess.Popen[Any]) -> int:
    """Send SIGINT, then SIGKILL if the process outlives STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def wait_until_serving(process: subprocess.Popen[Any], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not serving {url} after {START_TIMEOUT} s:\n{log.read_text()}")


def serve(
    command: Sequence[str], port: int, redis_url: str, tmp_path: Path
) -> Iterator[str]:
    log = tmp_path / "server.log"
    environment = {**os.environ, URL_VARIABLE: redis_url}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url, log)
        yield url
    finally:
        stop(process)


@pytest.fixture
def uvicorn_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.test_end_to_end:asgi_app_from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
    ]
    yield from serve(command, port, redis_url, tmp_path)


@pytest.fixture
def gunicorn_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "4",
        "tests.test_end_to_end:wsgi_app_from_environment()",
    ]
    yield from serve(command, port, redis_url, tmp_path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def check_session_lifecycle(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5.0) as http:
        login = http.post("/login", json={"user": "alice"})
        assert login.status_code == 200
        old = login.json()["access_token"]

        me = http.get("/me", headers=bearer(old))
        assert me.status_code == 200
        assert me.json()["user_id"] == "alice"
        assert old not in me.text

        renew = http.post("/renew", headers=bearer(old))
        assert renew.status_code == 200
        new = renew.json()["access_token"]
        assert new != old

        assert http.get("/me", headers=bearer(old)).status_code == 401
        me_again = http.get("/me", headers=bearer(new))
        assert me_again.status_code == 200
        assert me_again.json()["user_id"] == "alice"

        logout = http.post("/logout", headers=bearer(new))
        assert logout.status_code == 204
        assert http.get("/me", headers=bearer(new)).status_code == 401
        # Replaying the renewed token after logout must not revive the session.
        assert http.post("/renew", headers=bearer(old)).status_code == 401


def test_asgi_middleware_under_uvicorn(uvicorn_url: str) -> None:
    check_session_lifecycle(uvicorn_url)


def test_wsgi_middleware_under_gunicorn(gunicorn_url: str) -> None:
    check_session_lifecycle(gunicorn_url)


def bearer_mw_command() -> str:
    """Find the installed console script, next to the running interpreter."""
    script = Path(sys.executable).with_name("bearer-mw")
    if not script.exists():
        message = f"{script} not found; install the project with pip install -e ."
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(script)


def copy_lines(stdout: IO[str], lines: queue.Queue[str]) -> None:
    for line in stdout:
        lines.put(line)


def read_banner(lines: queue.Queue[str], timeout: float) -> list[str]:
    """Read stdout lines until the blank line that ends the printed curl lines."""
    banner: list[str] = []
    deadline = time.monotonic() + timeout
    while len(banner) < 4 or banner[-1] != "":
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"the demo printed no complete curl lines: {banner!r}")
        banner.append(line.rstrip("\n"))
    return banner


@pytest.mark.parametrize("variant", [[], ["--wsgi"]], ids=["asgi", "wsgi"])
def test_demo_command_curl_lines(variant: list[str], tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        message = "curl not found on PATH; install it to run this test"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    port = free_port()
    log = tmp_path / "demo.log"

    with log.open("wb") as errors:
        process = subprocess.Popen(
            [bearer_mw_command(), "demo", "--port", str(port), *variant],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=copy_lines, args=(process.stdout, lines))
    reader.start()
    try:
        banner = read_banner(lines, START_TIMEOUT)
        commands = [
            line.strip()
            for line in banner
            if line.startswith("  ") and not line.strip().startswith("#")
        ]
        script = "\n".join(
            [
                "set -euo pipefail",
                *commands,
                "echo",
                f"echo \"after=$(curl -s -o /dev/null -w '%{{http_code}}' "
                f'http://127.0.0.1:{port}/me -H "Authorization: Bearer $TOKEN")"',
                'echo "token=$TOKEN"',
            ]
        )
        result = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        status = stop(process)
        reader.join(STOP_TIMEOUT)
        process.stdout.close()

    output = result.stdout
    token = output.rsplit("token=", 1)[-1].strip()
    server_log = log.read_text()

    assert banner[0] == f"bearer_mw demo on http://127.0.0.1:{port}"
    assert len(commands) == 4
    assert result.returncode == 0, result.stderr
    assert '"user_id":"alice"' in output
    assert "HTTP/1.1 204" in output
    assert "after=401" in output
    assert len(token) > 40
    assert token not in server_log
    assert "POST /renew 200" in server_log
    assert "POST /logout 204 user=alice" in server_log
    assert status == 0
    assert "demo stopped" in server_log
