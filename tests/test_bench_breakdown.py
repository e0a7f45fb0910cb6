"""The CPU breakdown of bearer_mw's parts: arithmetic, patches and one real run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from bearer_mw import SessionStore, tokens
from benchmarks import breakdown
from benchmarks.apps.settings import REDIS_URL_ENV
from benchmarks.breakdown import (
    BEARER_MW,
    BOTH_GIVEN,
    KEYS_GIVEN,
    OPENSSL_SHA256,
    RAW_GET,
    RECORD_GIVEN,
    VARIANTS,
    BreakdownOptions,
    InterfaceSamples,
    attribute_replaced,
    interface_list,
    measure_rounds,
    median_difference,
    render_markdown,
    summarise,
    unchanged,
    variant_patches,
)
from benchmarks.docs_page import breakdown_sections


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


def stored_reply(client: redis.Redis, store: SessionStore, token: str) -> Any:
    named = store._operations.lookup_key(token)
    assert named is not None
    return client.get(named[1])


def rows_by_variant(samples: InterfaceSamples) -> dict[str, dict[str, Any]]:
    return {row["variant"]: row for row in summarise(samples)}


def test_summarise_uses_per_round_differences() -> None:
    samples = InterfaceSamples(
        "wsgi",
        {
            RAW_GET: [100.0, 200.0, 100.0],
            BEARER_MW: [110.0, 230.0, 104.0],
            KEYS_GIVEN: [105.0, 215.0, 103.0],
        },
    )

    rows = rows_by_variant(samples)

    assert rows[BEARER_MW]["added_us"] == 10.0
    assert rows[KEYS_GIVEN]["saved_us"] == 5.0
    assert rows[KEYS_GIVEN]["added_us"] == 5.0
    assert rows[RAW_GET]["added_us"] == 0.0
    assert rows[BEARER_MW]["cpu_us"] == 110.0


def test_median_difference_pairs_rounds() -> None:
    # Per-round differences 50, 1 and 2 have the median 2, while the
    # difference of the two medians is 1.
    minuend = [150.0, 201.0, 302.0]
    subtrahend = [100.0, 200.0, 300.0]

    assert median_difference(minuend, subtrahend) == 2.0


def test_summarise_ratio_is_median_of_round_ratios() -> None:
    samples = InterfaceSamples(
        "asgi",
        {RAW_GET: [100.0, 300.0, 90.0], BEARER_MW: [125.0, 310.0, 100.0]},
    )

    row = rows_by_variant(samples)[BEARER_MW]

    assert row["vs_raw_get"] == pytest.approx(0.9)
    assert row["vs_raw_get_range"] == pytest.approx((0.8, 300.0 / 310.0))


def test_interface_list_accepts_known_names() -> None:
    assert interface_list("asgi, wsgi,asgi") == ("asgi", "wsgi")


@pytest.mark.parametrize("text", ["", "wsgi,http", ","])
def test_interface_list_rejects_unknown(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        interface_list(text)


def test_attribute_replaced_restores_value() -> None:
    target = SimpleNamespace(value=1)

    with attribute_replaced(target, "value", 2):
        assert target.value == 2
        with attribute_replaced(target, "extra", 3):
            assert target.extra == 3

    assert target.value == 1
    assert not hasattr(target, "extra")


def test_attribute_replaced_restores_after_error() -> None:
    target = SimpleNamespace(value=1)

    def failing_measurement() -> None:
        with (
            attribute_replaced(target, "value", 2),
            attribute_replaced(target, "extra", 3),
        ):
            raise RuntimeError("measurement failed")

    with pytest.raises(RuntimeError, match="measurement failed"):
        failing_measurement()

    assert target.value == 1
    assert not hasattr(target, "extra")


def test_measure_rounds_reverses_order_each_round(tmp_path: Path) -> None:
    calls: list[str] = []

    def recording_caller(name: str) -> breakdown.Caller:
        def call(count: int) -> None:
            calls.append(name)

        return call

    names = (RAW_GET, BEARER_MW, KEYS_GIVEN)
    callers: dict[str, tuple[breakdown.Caller, breakdown.Patch]] = {
        name: (recording_caller(name), unchanged) for name in names
    }
    options = BreakdownOptions(
        requests=1,
        warmup=1,
        rounds=2,
        interfaces=("wsgi",),
        results_dir=tmp_path,
        pin=False,
        verbose=False,
        command="python -m benchmarks.breakdown",
    )

    result = measure_rounds("wsgi", callers, options)

    assert calls[:3] == list(names)
    assert calls[3:6] == list(names)
    assert calls[6:] == list(reversed(names))
    for name in names:
        assert len(result.samples[name]) == 2


def test_variant_patches_skip_the_replaced_part(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(redis_client)
    token, session = store.create_session("user-1", {"scopes": ["read"]})
    reply = stored_reply(redis_client, store, token)
    patches = variant_patches(store, token, reply)

    def failing_digest(data: bytes) -> Any:
        raise AssertionError("the digest ran")

    monkeypatch.setattr(tokens, "_REQUEST_SHA256", failing_digest)
    with patches[KEYS_GIVEN]():
        assert store.find_session(token) == session
    with pytest.raises(AssertionError, match="the digest ran"):
        store.find_session(token)

    monkeypatch.undo()
    with patches[OPENSSL_SHA256]():
        assert tokens._REQUEST_SHA256.__module__ == "_hashlib"
        assert store.find_session(token) == session
    assert tokens._REQUEST_SHA256.__module__ in {"_sha2", "_sha256"}


def test_variant_patches_return_session_without_decoding(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    token, session = store.create_session("user-2")
    reply = stored_reply(redis_client, store, token)
    patches = variant_patches(store, token, reply)

    redis_client.flushdb()

    with patches[RECORD_GIVEN]():
        # The record is gone, but the replaced decoding still returns the session.
        assert store.find_session(token) == session
    with patches[BOTH_GIVEN]():
        assert store._operations.lookup_key("not a token") is not None
        assert store.find_session(token) == session
    assert store._operations.lookup_key("not a token") is None
    assert store.find_session(token) is None


@pytest.mark.usefixtures("redis_installed")
def test_main_writes_tables_for_both_interfaces(tmp_path: Path) -> None:
    argv = ["--requests", "20", "--warmup", "5", "--rounds", "2"]
    argv += ["--results-dir", str(tmp_path)]

    assert breakdown.main(argv) == 0

    markdown = (tmp_path / "breakdown.md").read_text()
    data = json.loads((tmp_path / "breakdown.json").read_text())
    assert "## WSGI" in markdown
    assert "## ASGI" in markdown
    for interface in ("wsgi", "asgi"):
        samples = data["interfaces"][interface]["samples_us"]
        assert list(samples) == list(VARIANTS)
        for name in VARIANTS:
            assert len(samples[name]) == 2
            assert all(value > 0 for value in samples[name])
    rows = {row["variant"]: row for row in data["interfaces"]["wsgi"]["rows"]}
    assert set(rows) == set(VARIANTS)


@pytest.mark.usefixtures("redis_installed")
@pytest.mark.parametrize("previous_url", [None, "unix:///nonexistent/previous.sock"])
def test_main_restores_affinity_and_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous_url: str | None
) -> None:
    if previous_url is None:
        monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(REDIS_URL_ENV, previous_url)
    # The affinity calls are faked, so the check can fail even where the
    # process already runs on one core and pinning would change nothing.
    affinity_calls: list[set[int]] = []
    monkeypatch.setattr(breakdown, "pinning", lambda no_pin: (0, None))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(
        os, "sched_setaffinity", lambda pid, cpus: affinity_calls.append(set(cpus))
    )
    argv = ["--requests", "5", "--warmup", "1", "--rounds", "1"]
    argv += ["--interfaces", "wsgi", "--results-dir", str(tmp_path)]

    assert breakdown.main(argv) == 0

    assert affinity_calls[0] == {0}
    assert affinity_calls[-1] == {0, 1}
    assert os.environ.get(REDIS_URL_ENV) == previous_url


def test_docs_page_embeds_breakdown(tmp_path: Path) -> None:
    samples = InterfaceSamples(
        "wsgi", {RAW_GET: [100.0, 100.0], BEARER_MW: [110.0, 112.0]}
    )
    report = render_markdown([samples], {"rounds": "2"}, "python -m x")
    (tmp_path / "breakdown.md").write_text(report)

    sections = breakdown_sections(tmp_path)

    assert sections[0] == "## CPU time of bearer_mw's parts"
    assert "\n### WSGI\n" in sections[2]
    assert "\n## " not in sections[2]
    assert "| bearer_mw | " in sections[2]
    assert "| +11.0 | +0.0 | 0.901x |" in sections[2]


def test_docs_page_without_breakdown(tmp_path: Path) -> None:
    assert breakdown_sections(tmp_path) == []


def test_build_options_accepts_zero_warmup() -> None:
    options = breakdown.build_options(["--warmup", "0"])

    assert options.warmup == 0


@pytest.mark.parametrize(
    "argv", [["--requests", "0"], ["--rounds", "0"], ["--warmup", "-1"]]
)
def test_build_options_rejects_too_small(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        breakdown.build_options(argv)


def test_main_without_redis_server_fails_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    assert breakdown.main(["--results-dir", str(tmp_path / "out")]) == 1

    assert "apt-get install redis-server" in caplog.text
    assert "--redis-url" not in caplog.text
    assert not (tmp_path / "out").exists()


def test_main_unusable_results_dir_fails_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a directory")

    assert breakdown.main(["--results-dir", str(blocker)]) == 1

    assert "results" in caplog.text
    assert "round" not in caplog.text
