"""Rewrite ``docs/benchmarks.md`` from a run's results."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.report import render_sections
from benchmarks.results import RunResult

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = PROJECT_ROOT / "docs" / "benchmarks.md"

METHOD = """\
The harness in `benchmarks/` starts a private `redis-server` on loopback and serves
each variant in its own server process: uvicorn for ASGI and gunicorn (one gthread
worker) for WSGI. Where `taskset` exists and the machine has two or more cores,
the servers are pinned to one core, and the load generator and Redis to another.
The load generator is wrk with a Lua script that cycles through up to 1,000 seeded
tokens and counts response statuses. Without wrk, a Python asyncio generator takes
its place, and the settings table names the generator used. Each measurement
follows a warm-up run. The comparison, stored-sessions, pools and cluster suites
repeat their measurements in interleaved rounds: each round measures every variant
once before the next round starts, in the round order that the settings table
gives (a run whose table has no such row used the same order every round). Tables
show the median of the rounds for req/s, latency and CPU. A ratio between two
variants is taken within each round, and the tables show the median of those
per-round ratios with their range. The two variants of a round ran seconds apart,
so drift that the shared machine imposed on both cancels out.

Every variant answers `GET /me` with a small JSON object that contains the user id:

- `bare` does no authentication and is the ceiling for its interface.
- `raw-get` makes one hand-written Redis GET of a packed JSON record through the
  same client as bearer_mw.
- `bearer_mw` runs the middleware in eager mode with a valid token. The
  `-missing`, `-malformed`, `-revoked` and `-idle` variants send no token, a token
  with a character that RFC 6750 forbids, the token of an invalidated session,
  and the token of a session in its idle period, which validation rejects.
  `-lazy` runs lazy mode with the session optional, on a route that never reads
  it, so the middleware skips the lookup.
- Peers: Starlette's `AuthenticationMiddleware` with a Redis token backend,
  fastapi-users with `BearerTransport` and `RedisStrategy`, and Flask-HTTPAuth's
  `HTTPTokenAuth` with a Redis lookup. Each peer also has a baseline of its own
  framework without authentication (`starlette-bare`, `fastapi-bare`,
  `flask-bare`), which the "vs own baseline" and "added CPU" columns compare
  against. fastapi-users reads users from an in-memory table, so its figures
  leave out the SQL query that a deployment makes.

Every app that talks to Redis, the peers included, builds its client with
`bearer_mw.redis_from_url(url)` (with `asyncio=True` for ASGI): a
`BlockingConnectionPool` of `max_connections` connections (the settings table
gives the run's default), 2 s connect, reply and pool-wait timeouts, and
redis-py's retries off. redis-py parses replies with hiredis when
it is installed, and the settings table shows whether it was.

The pools suite serves the ASGI `bearer_mw` variant once per client choice and
loads each at 256 connections (`--pool-connections`): redis-py's own
`redis.asyncio.Redis.from_url` (a non-blocking pool that raises
`MaxConnectionsError` once it has 100 connections in redis-py 8.2, with
redis-py's retries), `redis_from_url` with several `max_connections` values
(the settings column of the table names each),
`redis_from_url` with redis-py's pure-Python parser in place of hiredis (passed
as `parser_class`, so hiredis stays installed), and `redis_from_url` over the
private server's unix socket. A choice is safe at that concurrency when it
shows no unexpected status and no socket error: a client error makes bearer_mw
answer 503.

The cluster suite starts a Redis Cluster of three primaries without replicas on
loopback (or uses `--cluster-url`), seeds sessions through `SessionStore` on a
cluster client, and measures the ASGI and WSGI `bearer_mw` variants against the
single server and the cluster in interleaved rounds. The cluster nodes run on
the same core as the single server and the load generator. Any suite but pools
and cluster also runs on a cluster given as
`--redis-url redis+cluster://host:port,...`.

Redis commands per request come from `INFO commandstats` before and after each
measurement, less the harness's own INFO calls, summed over the primaries of a
cluster. Server CPU per request is the user plus system time of the server's
process group from `/proc/PID/stat`. Both divide by the requests served. With
wrk, that is the completed requests plus one per connection, because wrk drops
the request in flight on each connection when it stops, and the server still
serves it.

The stored-sessions suite gives each count (1 thousand, 100 thousand and 1
million by default) a redis-server of its own, seeds it once, serves `raw-get`
and `bearer_mw` against each, and measures all counts in every round. With
`--redis-url` it falls back to seeding and measuring one count after another in
the one database, and the settings table names the way the run took.

The memory table uses `MEMORY USAGE` on the keys that sessions add, and the
stored-sessions table divides the growth of Redis `used_memory` by the number of
sessions seeded. The table of store operations covers 100 calls of each operation on a
`SessionStore`. It counts round trips on the client side, and the server's
`INFO commandstats` for the same calls. Those include the commands that a Lua
script runs inside its one round trip.

The targets table at the top checks each target against this run's figures
and gives the amount by which a missed one fell short. Throughput targets use the
median per-round ratio.

## Reading the figures

These runs share a small machine with other work, so absolute figures vary from
run to run. "Server core busy" is the server's CPU seconds per second of load.
Well below 100% means that other processes or the load generator held the server
back, so that row's req/s and latency understate it. Compare req/s only between
rows that are both near 100%. Server CPU per request varies less under such
contention, so it is the better figure for comparing the work that each variant
does per request.
"""


HOW_TO = """\
Install the benchmark extra and wrk (Debian: `apt-get install wrk`), then run the
harness from the project root:

```
pip install -e '.[bench]'
python -m benchmarks --quick
python -m benchmarks --suites comparison,concurrency,sessions,memory,pools,cluster \
    --concurrency-levels 1,2,4,8,16,32,64,128,256 \
    --sessions 1000,100000,1000000 --write-docs
```

The first command is a shorter check with one round. The second is the run
shown below, with the rounds and durations its command line gives, and rewrites
this page; `--write-docs` takes only runs of three rounds or more. `python -m
benchmarks --help` lists the options, and results go to `benchmarks/results/`.
[performance-notes.md](performance-notes.md) explains the figures: where the
time per request goes, how much this machine's noise moves them, and what a
missed target would take.
"""


SERVER_INSTRUCTIONS_INTRO = """\
`python -m benchmarks.server_instructions` counts, under callgrind, the
instructions that a whole uvicorn or gunicorn process executes per request, in
a run separate from the load runs above. Instruction counts do not change with
other load on the machine, so the last column predicts the throughput ratio
to `raw-get` of a server whose CPU is the bottleneck, free of the noise that
moves the req/s figures. `benchmarks/README.md` describes the method.
"""


def embedded_report(path: Path, heading: str, intro: str) -> list[str]:
    """Return ``heading``, ``intro`` and a results page without its title.

    Empty when ``path`` does not exist. The page's own headings move one level
    down, under ``heading``.
    """
    if not path.exists():
        return []
    _title, _, body = path.read_text().partition("\n")
    return [heading, intro, body.replace("\n## ", "\n### ")]


def server_instructions_sections(results_dir: Path) -> list[str]:
    """Return the heading, introduction and table of the latest server count.

    Empty when ``results_dir`` contains no ``server_instructions.md``.
    """
    return embedded_report(
        results_dir / "server_instructions.md",
        "## Server instructions per request",
        SERVER_INSTRUCTIONS_INTRO,
    )


BREAKDOWN_INTRO = """\
`python -m benchmarks.breakdown` calls the `raw-get` and `bearer_mw` apps in one
process, against a private redis-server, and measures CPU time per request.
It also measures bearer_mw with parts of its lookup replaced by results
computed before the run, so what a part saves is what it costs. Instruction
counts weigh every instruction alike, and this shows how the added
microseconds divide between the parts. `benchmarks/README.md` describes the
method.
"""


def breakdown_sections(results_dir: Path) -> list[str]:
    """Return the heading, introduction and tables of the latest CPU breakdown.

    Empty when ``results_dir`` contains no ``breakdown.md``. The report's own
    headings move one level down, under the page's heading.
    """
    return embedded_report(
        results_dir / "breakdown.md",
        "## CPU time of bearer_mw's parts",
        BREAKDOWN_INTRO,
    )


PROFILE_INTRO = """\
`python -m benchmarks.profile` serves each variant as the load runs do (by
default `raw-get` and `bearer_mw` of both interfaces) and samples the server
with py-spy while wrk sends load. Each sample goes to the code that owns its
innermost frame (bearer_mw, the app, redis-py, the server or asyncio), and
the server's CPU per request is split by those shares.
`benchmarks/README.md` describes the method and its limits.
"""


def profile_sections(results_dir: Path) -> list[str]:
    """Return the heading, introduction and tables of the latest profile.

    Empty when ``results_dir`` contains no ``profile.md``. The report's own
    headings move one level down, under the page's heading.
    """
    return embedded_report(
        results_dir / "profile.md", "## Where server time goes", PROFILE_INTRO
    )


def render_docs_page(result: RunResult, results_dir: Path) -> str:
    """Render the page, linking the plots that the run saved in ``results_dir``."""
    plot_prefix = Path(
        os.path.relpath(results_dir.resolve(), DOCS_PAGE.parent)
    ).as_posix()
    sections = [
        "# Benchmarks",
        "## Method",
        METHOD,
        "## How to run",
        HOW_TO,
        "## Latest run",
        f"Command: `{result.command}`",
        f"Run from {result.started_at} to {result.finished_at}.",
        render_sections(result, plot_prefix + "/"),
        *server_instructions_sections(results_dir),
        *breakdown_sections(results_dir),
        *profile_sections(results_dir),
    ]
    return "\n\n".join(section.strip("\n") for section in sections) + "\n"


def write_docs_page(
    result: RunResult, results_dir: Path, path: Path = DOCS_PAGE
) -> Path:
    """Replace the benchmarks page with the method, command and figures of a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_docs_page(result, results_dir))
    return path
