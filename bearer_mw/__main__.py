"""Command line of bearer_mw: ``bearer-mw demo`` or ``python -m bearer_mw demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .demo import DemoOptions, run_demo

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"port must be between 0 and 65535, got {port}"
        )
    return port


def _seconds(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        seconds = int(text)
        if seconds < minimum:
            raise argparse.ArgumentTypeError(
                f"must be at least {minimum} seconds, got {seconds}"
            )
        return seconds

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(
        prog="bearer-mw",
        description="Bearer tokens backed by server-side sessions in Redis.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="serve an example API behind the middleware",
        description=(
            "Serve an example API behind the middleware: POST /login, GET /me, "
            "POST /renew, POST /logout and POST /logout-all. The demo trusts "
            "the user name sent to /login, so anyone who reaches it can log in "
            "as anyone. It prints curl lines to try it."
        ),
    )
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port to listen on; 0 picks a free one (default: %(default)s)",
    )
    demo.add_argument(
        "--wsgi",
        action="store_true",
        help="serve the WSGI variant with Werkzeug's threaded development server "
        "instead of the ASGI variant with uvicorn",
    )
    demo.add_argument(
        "--redis-url",
        metavar="URL",
        help="Redis server to keep sessions in, as redis://host:port/db, "
        "rediss://... or unix:///path; default: an embedded fakeredis that "
        "forgets the sessions when the demo stops",
    )
    demo.add_argument(
        "--active-seconds",
        type=_seconds(1),
        default=600,
        help="seconds a new or renewed token stays active (default: %(default)s)",
    )
    demo.add_argument(
        "--idle-seconds",
        type=_seconds(0),
        default=3600,
        help="seconds after the active period during which the token can still "
        "be renewed (default: %(default)s)",
    )
    demo.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="level of the log written to stderr (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    options = DemoOptions(
        host=arguments.host,
        port=arguments.port,
        wsgi=arguments.wsgi,
        redis_url=arguments.redis_url,
        active_seconds=arguments.active_seconds,
        idle_seconds=arguments.idle_seconds,
        log_level=arguments.log_level,
    )
    return run_demo(options)


if __name__ == "__main__":
    sys.exit(main())
