"""Python load generator for machines without wrk.

Run as ``python -m benchmarks.pyload URL HEADER_FILE --connections N --duration S``.
It keeps N HTTP/1.1 keep-alive connections busy over asyncio streams for S seconds
and prints the same ``BENCH_RESULT {json}`` line as the wrk script. One Python
process saturates at far fewer requests per second than wrk, so its figures are
a floor for fast variants. The harness names the generator in its settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Latency samples kept per run (8 bytes each), which bounds memory on long runs.
MAX_SAMPLES = 5_000_000


@dataclass
class Totals:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeouts: int = 0


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response and return its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = headers.get("connection") != "close" and version == "HTTP/1.1"
    return int(status_text), keep_alive


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def exchange(
    connection: Connection, request: bytes, request_timeout: float, totals: Totals
) -> bool:
    """Send one request, count the outcome, and return whether to reuse the socket."""
    reader, writer = connection
    started = time.perf_counter()
    try:
        writer.write(request)
        await writer.drain()
    except OSError:
        totals.write_errors += 1
        return False
    try:
        response = read_response(reader)
        status, keep_alive = await asyncio.wait_for(response, request_timeout)
    except TimeoutError:
        totals.timeouts += 1
        return False
    except (OSError, ValueError, asyncio.IncompleteReadError):
        totals.read_errors += 1
        return False
    totals.statuses[status] += 1
    if len(totals.latencies) < MAX_SAMPLES:
        totals.latencies.append(time.perf_counter() - started)
    return keep_alive


async def drive_connection(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    stop_at: float,
    request_timeout: float,
    totals: Totals,
) -> None:
    """Send requests on one connection until ``stop_at``, reconnecting after errors."""
    connection: Connection | None = None
    position = offset
    while time.monotonic() < stop_at:
        if connection is None:
            try:
                opening = asyncio.open_connection(host, port)
                connection = await asyncio.wait_for(opening, request_timeout)
            except (OSError, TimeoutError):
                totals.connect_errors += 1
                await asyncio.sleep(0.01)
                continue
        request = requests[position % len(requests)]
        position += 1
        if not await exchange(connection, request, request_timeout, totals):
            connection[1].close()
            connection = None
    if connection is not None:
        connection[1].close()


def build_requests(
    host: str, port: int, path: str, header_values: list[str]
) -> list[bytes]:
    requests = []
    for value in header_values:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
        if value != "-":
            lines.append(f"Authorization: {value}")
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return requests


def percentile_us(sorted_seconds: list[float], percent: float) -> int:
    if not sorted_seconds:
        return 0
    rank = min(len(sorted_seconds) - 1, int(len(sorted_seconds) * percent / 100))
    return round(sorted_seconds[rank] * 1_000_000)


async def run(
    url: str,
    header_values: list[str],
    connections: int,
    duration: float,
    request_timeout: float,
) -> dict[str, object]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    requests = build_requests(host, port, path, header_values)

    totals = Totals()
    started = time.monotonic()
    stop_at = started + duration
    tasks = [
        drive_connection(
            host, port, requests, index * 7, stop_at, request_timeout, totals
        )
        for index in range(connections)
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), duration + 2 * request_timeout + 5)
    elapsed = time.monotonic() - started

    ordered = sorted(totals.latencies)
    return {
        "requests": sum(totals.statuses.values()),
        "duration_us": round(elapsed * 1_000_000),
        "errors": {
            "connect": totals.connect_errors,
            "read": totals.read_errors,
            "write": totals.write_errors,
            "timeout": totals.timeouts,
        },
        "latency_us": {
            "mean": statistics.fmean(ordered) * 1_000_000 if ordered else 0.0,
            "p50": percentile_us(ordered, 50),
            "p90": percentile_us(ordered, 90),
            "p99": percentile_us(ordered, 99),
            "max": percentile_us(ordered, 100),
        },
        "statuses": {str(status): count for status, count in totals.statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("header_file", type=Path)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per request"
    )
    args = parser.parse_args()
    values = [line for line in args.header_file.read_text().splitlines() if line]
    result = asyncio.run(
        run(args.url, values, args.connections, args.duration, args.timeout)
    )
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
