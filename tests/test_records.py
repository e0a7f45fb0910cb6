"""Tests of Redis key names and the records stored under them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from bearer_mw.errors import ConfigurationError
from bearer_mw.records import (
    KeySpace,
    RenewedRecord,
    SessionKeys,
    decode_live,
    decode_record,
    decode_renewed,
    encode_payload,
    encode_record,
    encode_renewed,
    to_base36,
)
from bearer_mw.tokens import (
    CHECK_LENGTH,
    new_token,
    seal_successor,
    token_digest,
    user_tag,
)

NOW = 1_700_000_000_000
ACTIVE = NOW + 60_000
IDLE = NOW + 600_000


@pytest.fixture
def keys() -> SessionKeys:
    return KeySpace().for_token(new_token(user_tag("alice")))


def live_record(keys: SessionKeys, payload: str = '["alice",{"role":"admin"}]') -> str:
    return encode_record(keys.check, NOW, ACTIVE, IDLE, payload)


# Key names


def test_key_space_layout() -> None:
    token = new_token(user_tag("alice"))
    tag = user_tag("alice")
    digest = token_digest(token)

    keys = KeySpace().for_token(token)

    assert keys.digest == digest
    assert keys.session == f"bmw:s:{{{tag}}}{digest}"
    assert keys.index == f"bmw:u:{{{tag}}}"
    assert keys.check == digest[:CHECK_LENGTH]


def test_key_space_custom_prefix() -> None:
    keys = KeySpace("app:").for_token(new_token(user_tag("alice")))

    assert keys.session.startswith("app:s:{")
    assert keys.index.startswith("app:u:{")


def test_keys_of_one_user_share_hash_slot() -> None:
    space = KeySpace()
    first = space.for_token(new_token(user_tag("alice")))
    second = space.for_token(new_token(user_tag("alice")))

    slots = {key_slot(key.encode()) for key in (first.session, second.session)}
    slots.add(key_slot(first.index.encode()))

    assert len(slots) == 1
    assert first.index == second.index
    assert first.session != second.session


@pytest.mark.parametrize("prefix", ["{", "}", "app{x}:", "a}b{"])
def test_key_space_rejects_braces(prefix: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        KeySpace(prefix)

    assert repr(prefix) in str(raised.value)


# Payloads


def test_encode_payload_is_compact_json() -> None:
    payload = encode_payload("zoë", {"scopes": ["a", "b"], "n": 1})

    assert payload == '["zoë",{"scopes":["a","b"],"n":1}]'
    assert json.loads(payload) == ["zoë", {"scopes": ["a", "b"], "n": 1}]


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"value": object()}, id="object"),
        pytest.param({"value": float("nan")}, id="nan"),
        pytest.param({"value": float("-inf")}, id="negative-infinity"),
        pytest.param({"value": {1, 2}}, id="set"),
        pytest.param({(1, 2): "tuple key"}, id="tuple-key"),
        pytest.param([("a", 1), ("b",)], id="bad-pairs"),
    ],
)
def test_encode_payload_rejects_unserialisable(attributes: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        encode_payload("alice", attributes)

    assert isinstance(raised.value.__cause__, TypeError | ValueError)


# Live records


@pytest.mark.parametrize(
    "number",
    [0, 1, 35, 36, NOW, IDLE, 2**53 + 1, 253_402_300_799_999],
)
def test_to_base36_round_trips(number: int) -> None:
    text = to_base36(number)

    assert int(text, 36) == number
    assert text.isalnum()
    assert text == text.lower()


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_decode_record_round_trips(keys: SessionKeys, as_bytes: bool) -> None:
    record = live_record(keys)
    reply: str | bytes = record.encode() if as_bytes else record

    session = decode_record(reply, keys, NOW)

    assert session is not None
    assert session.session_id == keys.digest
    assert session.user_id == "alice"
    assert dict(session.attributes) == {"role": "admin"}
    assert session.created == NOW
    assert session.active_expires == ACTIVE
    assert session.idle_expires == IDLE
    assert session.state == "active"


def test_decode_record_keeps_separator_in_payload(keys: SessionKeys) -> None:
    payload = encode_payload("a|b", {"note": "x|y|1|2"})

    session = decode_record(live_record(keys, payload), keys, NOW)

    assert session is not None
    assert session.user_id == "a|b"
    assert session.attributes["note"] == "x|y|1|2"


@pytest.mark.parametrize(
    ("now", "state"),
    [
        pytest.param(ACTIVE - 1, "active", id="before-active-expiry"),
        pytest.param(ACTIVE, "idle", id="at-active-expiry"),
        pytest.param(IDLE - 1, "idle", id="before-idle-expiry"),
    ],
)
def test_decode_record_state_at(keys: SessionKeys, now: int, state: str) -> None:
    session = decode_record(live_record(keys), keys, now)

    assert session is not None
    assert session.state == state


@pytest.mark.parametrize("now", [IDLE, IDLE + 1], ids=["at-idle-expiry", "after"])
def test_decode_record_rejects_dead(keys: SessionKeys, now: int) -> None:
    assert decode_record(live_record(keys), keys, now) is None


def test_decode_record_rejects_wrong_check(keys: SessionKeys) -> None:
    other = KeySpace().for_token(new_token(user_tag("alice")))

    assert decode_record(live_record(other), keys, NOW) is None


def test_decode_record_rejects_renewed_record(keys: SessionKeys) -> None:
    renewed = encode_renewed(keys.check, NOW + 5_000, "digest", "sealed")

    assert decode_record(renewed, keys, NOW) is None


CORRUPT_RECORDS = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("garbage", id="garbage"),
    pytest.param("1|{check}", id="truncated"),
    pytest.param('3|{check}|1|{active}|{idle}|["a",{{}}]', id="unknown-kind"),
    pytest.param('1|{check}|1|soon!|{idle}|["a",{{}}]', id="invalid-active"),
    pytest.param('1|{check}|1||{idle}|["a",{{}}]', id="empty-active"),
    pytest.param('1|{check}|1|{active}|later!|["a",{{}}]', id="invalid-idle"),
    pytest.param('1|{check}|then!|{active}|{idle}|["a",{{}}]', id="invalid-created"),
    pytest.param('1|{check}||{active}|{idle}|["a",{{}}]', id="empty-created"),
    pytest.param('1|{check}|1|{upper}|{idle}|["a",{{}}]', id="uppercase-active"),
    pytest.param('1|{check}|+1|{active}|{idle}|["a",{{}}]', id="signed-created"),
    pytest.param('1|{check}|1_0|{active}|{idle}|["a",{{}}]', id="underscore-created"),
    pytest.param('1|{check}| 1|{active}|{idle}|["a",{{}}]', id="space-created"),
    pytest.param('1|{check}|1|{active}|{long}|["a",{{}}]', id="14-digit-idle"),
    pytest.param('1|{check}|1|{active}|{idle}|["a",{{}}]|', id="trailing-separator"),
    pytest.param('1|{check}|1|{active}|["a",{{}}]', id="missing-time"),
    pytest.param("1|{check}|1|{active}|{idle}|not json", id="not-json"),
    pytest.param("1|{check}|1|{active}|{idle}|", id="empty-payload"),
    pytest.param('1|{check}|1|{active}|{idle}|{{"a":1}}', id="payload-object"),
    pytest.param('1|{check}|1|{active}|{idle}|["a"]', id="payload-short"),
    pytest.param('1|{check}|1|{active}|{idle}|["a",{{}},3]', id="payload-long"),
    pytest.param("1|{check}|1|{active}|{idle}|[7,{{}}]", id="user-not-str"),
    pytest.param('1|{check}|1|{active}|{idle}|["a",[]]', id="attributes-list"),
    pytest.param("1|{check}|1|{active}|{idle}|42", id="payload-number"),
    pytest.param(b"1|\xff\xfe|1|2|3|[]", id="invalid-utf8"),
]


@pytest.mark.parametrize("record", CORRUPT_RECORDS)
def test_decode_record_rejects_corrupt(
    keys: SessionKeys, record: str | bytes | None
) -> None:
    if isinstance(record, str):
        record = record.format(
            check=keys.check,
            active=to_base36(ACTIVE),
            idle=to_base36(IDLE),
            upper=to_base36(ACTIVE).upper(),
            long="0" + to_base36(IDLE).rjust(13, "0"),
        )

    assert decode_record(record, keys, NOW) is None


# The payload decodes exactly as json.loads decodes it, surrounding
# whitespace included, although records are written without any.
PAYLOADS = [
    pytest.param('["a",{"n":1}]', "a", id="compact"),
    pytest.param(' ["a",{"n":1}]', "a", id="leading-space"),
    pytest.param('["a",{"n":1}]\n', "a", id="trailing-newline"),
    pytest.param('\t\r\n[ "a" , {"n": 1} ]  ', "a", id="whitespace-everywhere"),
    pytest.param('\ufeff["a",{"n":1}]', None, id="byte-order-mark"),
    pytest.param('["a",{"n":1}]x', None, id="trailing-text"),
    pytest.param('["a",{"n":1}]["b",{}]', None, id="two-values"),
    pytest.param('["a",{"n":1}] ]', None, id="trailing-bracket"),
    pytest.param('["a",{"n":1}', None, id="unterminated"),
    pytest.param('["a",{"n":01}]', None, id="leading-zero"),
    pytest.param('["a\x01",{}]', None, id="control-character"),
    pytest.param(" ", None, id="only-space"),
]


@pytest.mark.parametrize(("payload", "user_id"), PAYLOADS)
def test_decode_record_payload_extra_text(
    keys: SessionKeys, payload: str, user_id: str | None
) -> None:
    session = decode_record(live_record(keys, payload), keys, NOW)

    if user_id is None:
        assert session is None
    else:
        assert session is not None
        assert session.user_id == user_id
        assert dict(session.attributes) == {"n": 1}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)
JSON_TEXT = st.one_of(
    st.text(max_size=40),
    st.tuples(
        st.sampled_from(["", " ", "\n", "\ufeff", "x"]),
        st.tuples(st.text(max_size=8), JSON_VALUES).map(json.dumps),
        st.sampled_from(["", " ", "\t", "x", "]", "[]"]),
    ).map("".join),
)


def decode_with_json_loads(payload: str) -> tuple[str, dict[str, Any]] | None:
    try:
        user_id, attributes = json.loads(payload)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(user_id, str) or not isinstance(attributes, dict):
        return None
    return user_id, attributes


FUZZ_KEYS = KeySpace().for_token(new_token(user_tag("alice")))


@settings(max_examples=1_000, deadline=None)
@given(payload=JSON_TEXT)
def test_decode_record_payload_matches_json_loads(payload: str) -> None:
    keys = FUZZ_KEYS

    session = decode_record(live_record(keys, payload), keys, NOW)

    expected = decode_with_json_loads(payload)
    if expected is None:
        assert session is None
    else:
        assert session is not None
        assert session.user_id == expected[0]
        assert json.dumps(dict(session.attributes)) == json.dumps(expected[1])


# Renewed records


def test_decode_renewed_round_trips(keys: SessionKeys) -> None:
    successor = new_token(user_tag("alice"))
    sealed = seal_successor("old-token", successor)
    record = encode_renewed(keys.check, NOW + 5_000, token_digest(successor), sealed)

    renewed = decode_renewed(record.encode(), keys)

    assert renewed == RenewedRecord(NOW + 5_000, token_digest(successor), sealed)


def test_decode_renewed_rejects_wrong_check(keys: SessionKeys) -> None:
    other = KeySpace().for_token(new_token(user_tag("alice")))
    record = encode_renewed(other.check, NOW + 5_000, "digest", "sealed")

    assert decode_renewed(record, keys) is None


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("2|{check}|soon|digest|sealed", id="text-grace"),
        pytest.param("2|{check}|1|digest", id="truncated"),
        pytest.param("1|{check}|1|2|3|[]", id="live-record"),
        pytest.param(b"2|\xff|1|d|s", id="invalid-utf8"),
    ],
)
def test_decode_renewed_rejects_corrupt(
    keys: SessionKeys, record: str | bytes | None
) -> None:
    if isinstance(record, str):
        record = record.format(check=keys.check)

    assert decode_renewed(record, keys) is None


def test_renewed_record_repr_hides_successor() -> None:
    record = RenewedRecord(NOW, "successor-digest", "sealed-successor")

    representation = repr(record)

    assert "sealed-successor" not in representation
    assert str(NOW) in representation


# The grammar of a live record's times, written as a pattern to check the
# decoder's hand-written checks against.
TIME_GRAMMAR = re.compile(r"[0-9a-z]{1,13}")
TIME_TEXT = st.text(
    alphabet=st.sampled_from("09az AZ+-_.|\u0661\u00b2\u212a"), max_size=15
) | st.builds(to_base36, st.integers(min_value=0, max_value=36**14))


@settings(max_examples=2_000, deadline=None)
@given(created=TIME_TEXT, active=TIME_TEXT, idle=TIME_TEXT)
def test_decode_record_times_follow_grammar(
    created: str, active: str, idle: str
) -> None:
    keys = FUZZ_KEYS
    record = f'1|{keys.check}|{created}|{active}|{idle}|["a",{{}}]'

    session = decode_record(record, keys, 0)

    times = (created, active, idle)
    follows = all(TIME_GRAMMAR.fullmatch(time) for time in times)
    alive = follows and (int(active, 36) > 0 or int(idle, 36) > 0)
    assert (session is not None) == alive
    if session is not None:
        assert (session.created, session.active_expires, session.idle_expires) == (
            int(created, 36),
            int(active, 36),
            int(idle, 36),
        )


def test_lookup_key_matches_for_token() -> None:
    space = KeySpace("app:")
    token = new_token(user_tag("alice"))
    keys = space.for_token(token)

    assert space.lookup_key(token) == (keys.digest, keys.session)


# Records that differ from a live record in one field, for decode_live.
ODD_FIELDS = [
    pytest.param("11", "{check}", "{active}", id="kind-11"),
    pytest.param(" 1", "{check}", "{active}", id="kind-leading-space"),
    pytest.param("\uff11", "{check}", "{active}", id="kind-fullwidth-digit"),
    pytest.param("1\n", "{check}", "{active}", id="kind-newline"),
    pytest.param("1", "{check}\n", "{active}", id="check-newline"),
    pytest.param("1", "{check}", "{active}\n", id="active-newline"),
    pytest.param("1", "{check}", "-{active}", id="active-sign"),
    pytest.param("1", "{check}", "\u0661{active}", id="active-arabic-indic-digit"),
    pytest.param("1", "{check}", "\u00b2{active}", id="active-superscript"),
    pytest.param("1", "{check}", "\u212a{active}", id="active-kelvin-sign"),
    pytest.param("1", "{check}", "\uff11{active}", id="active-fullwidth-digit"),
    pytest.param("1", "{check}", "{active}A", id="active-mixed-case"),
]


@pytest.mark.parametrize(("kind", "check", "active"), ODD_FIELDS)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_decode_live_rejects_odd_fields(
    keys: SessionKeys, kind: str, check: str, active: str, as_bytes: bool
) -> None:
    fields = (
        kind,
        check.format(check=keys.check),
        to_base36(NOW),
        active.format(active=to_base36(ACTIVE)),
        to_base36(IDLE),
        '["alice",{}]',
    )
    record = "|".join(fields)
    reply: str | bytes = record.encode() if as_bytes else record

    assert decode_live(reply, keys.digest, NOW) is None
    # The same record with the field as issued decodes.
    assert decode_live(live_record(keys), keys.digest, NOW) is not None


# A live record as the regular expression that first defined it reads it.
LIVE_GRAMMAR = re.compile(
    r"1\|([^|]*)\|([0-9a-z]{1,13})\|([0-9a-z]{1,13})\|([0-9a-z]{1,13})\|(.*)",
    re.DOTALL,
)
ODD_TEXT = st.text(
    alphabet=st.sampled_from("019az AZ+-_.|\n\u0661\u00b2\u212a\uff11"), max_size=6
)
ISSUED_FIELDS = (
    "1",
    FUZZ_KEYS.check,
    to_base36(NOW),
    to_base36(ACTIVE),
    to_base36(IDLE),
    '["a",{}]',
)
# What may replace each field of ISSUED_FIELDS, in order.
FIELD_CHANGES = (
    st.sampled_from(["2", "11", "", " 1", "\uff11"]) | ODD_TEXT,
    st.sampled_from([FUZZ_KEYS.check.upper(), FUZZ_KEYS.check[:-1]]) | ODD_TEXT,
    TIME_TEXT,
    TIME_TEXT,
    TIME_TEXT,
    st.sampled_from(['["a|b",{"c":"|"}]', "[]", '["a",{}]\n']) | ODD_TEXT,
)


@st.composite
def record_fields(draw: st.DrawFn) -> tuple[str, ...]:
    """Draw the fields of an issued record with up to two of them changed."""
    fields = list(ISSUED_FIELDS)
    for index in draw(st.sets(st.integers(min_value=0, max_value=5), max_size=2)):
        fields[index] = draw(FIELD_CHANGES[index])
    return tuple(fields)


def decode_with_grammar(record: str, now: int) -> tuple[Any, ...] | None:
    match = LIVE_GRAMMAR.fullmatch(record)
    if match is None or match[1] != FUZZ_KEYS.check:
        return None
    active, idle = int(match[3], 36), int(match[4], 36)
    if now < active:
        state = "active"
    elif now < idle:
        state = "idle"
    else:
        return None
    expected = decode_with_json_loads(match[5])
    if expected is None:
        return None
    return expected[0], int(match[2], 36), active, idle, state


def time_or_zero(text: str) -> int:
    return int(text, 36) if TIME_GRAMMAR.fullmatch(text) else 0


@settings(max_examples=2_000, deadline=None)
@given(
    fields=record_fields(),
    separator=st.sampled_from(["|"] * 8 + ["||", "\u00a6", ""]),
    anchor=st.sampled_from([2, 3, 4]),
    offset=st.integers(min_value=-1, max_value=1),
    as_bytes=st.booleans(),
)
def test_decode_live_follows_record_grammar(
    fields: tuple[str, ...], separator: str, anchor: int, offset: int, as_bytes: bool
) -> None:
    # The clock sits next to one of the record's times, where states change.
    now = max(0, time_or_zero(fields[anchor]) + offset)
    record = separator.join(fields)
    reply: str | bytes = record.encode() if as_bytes else record

    session = decode_live(reply, FUZZ_KEYS.digest, now)

    expected = decode_with_grammar(record, now)
    if expected is None:
        assert session is None
    else:
        assert session is not None
        assert session.session_id == FUZZ_KEYS.digest
        observed = (
            session.user_id,
            session.created,
            session.active_expires,
            session.idle_expires,
            session.state,
        )
        assert observed == expected


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(memoryview(b'1|x|1|2|3|["a",{}]'), id="memoryview"),
        pytest.param(bytearray(b'1|x|1|2|3|["a",{}]'), id="bytearray"),
        pytest.param(42, id="int"),
        pytest.param(["1", "x"], id="list"),
    ],
)
def test_decode_live_rejects_other_reply_types(reply: Any) -> None:
    assert decode_live(reply, FUZZ_KEYS.digest, NOW) is None
