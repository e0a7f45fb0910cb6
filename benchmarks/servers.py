"""Serve an app variant: uvicorn for ASGI, gunicorn for WSGI, one worker each."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.apps import settings
from benchmarks.processes import Child, Supervisor, free_loopback_port, wait_for_http
from benchmarks.variants import App

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REQUEST_PATH = "/me"


@dataclass
class RunningServer:
    """A started server: the app it serves, its child process and its URL."""

    app: App
    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{REQUEST_PATH}"

    @property
    def pgid(self) -> int:
        return self.child.pid


def server_command(app: App, port: int, wsgi_threads: int) -> list[str]:
    if app.interface == "asgi":
        return [
            sys.executable, "-m", "uvicorn", "benchmarks.apps.asgi:create_app",
            "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "benchmarks.apps.wsgi:create_app()",
        "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "gthread", "--threads", str(wsgi_threads),
        "--log-level", "warning",
    ]  # fmt: skip


def server_environment(app: App, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    python_path = [str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    env[settings.APP_ID_ENV] = app.app_id
    env[settings.REDIS_URL_ENV] = redis_url
    env[settings.CLIENT_ENV] = app.client
    return env


def start_server(
    supervisor: Supervisor,
    app: App,
    *,
    redis_url: str,
    cpu: int | None,
    wsgi_threads: int,
    log_prefix: str = "",
) -> RunningServer:
    """Start the server of ``app`` on a free loopback port; wait until it responds.

    ``log_prefix`` keeps apart the logs of one app served against two Redis
    deployments.
    """
    port = free_loopback_port()
    name = log_prefix + app.name.replace(":", "-")
    child = supervisor.start(
        name,
        server_command(app, port, wsgi_threads),
        cpu=cpu,
        env=server_environment(app, redis_url),
        cwd=PROJECT_ROOT,
    )
    wait_for_http(child, port)
    return RunningServer(app, child, port)
