"""Parsing of Authorization header values, with no middleware and no Redis."""

from __future__ import annotations

import pytest

from bearer_mw import read_bearer_token
from bearer_mw.header import (
    DEFAULT_MAX_LENGTH,
    CredentialsStatus,
    parse_authorization,
)
from tests.middleware_support import HEADER_CASES


@pytest.mark.parametrize(("value", "status", "token", "required_status"), HEADER_CASES)
def test_parse_header_table(
    value: bytes,
    status: CredentialsStatus,
    token: str | None,
    required_status: int,
) -> None:
    credentials = parse_authorization(value)

    assert credentials.status is status
    assert credentials.token == token


@pytest.mark.parametrize(("value", "status", "token", "required_status"), HEADER_CASES)
def test_parse_header_table_as_text(
    value: bytes,
    status: CredentialsStatus,
    token: str | None,
    required_status: int,
) -> None:
    # WSGI servers pass the same bytes on as latin-1 text.
    credentials = parse_authorization(value.decode("latin-1"))

    assert credentials.status is status
    assert credentials.token == token


@pytest.mark.parametrize(("value", "status", "token", "required_status"), HEADER_CASES)
@pytest.mark.parametrize("max_length", [DEFAULT_MAX_LENGTH, 12])
def test_read_bearer_token_agrees_with_parse(
    value: bytes,
    status: CredentialsStatus,
    token: str | None,
    required_status: int,
    max_length: int,
) -> None:
    # The middleware reads the token first and parses only when it gets None.
    parsed = parse_authorization(value, max_length=max_length)

    assert read_bearer_token(value, max_length=max_length) == parsed.token
    assert (parsed.token is None) is (parsed.status is not CredentialsStatus.BEARER)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        pytest.param("bEaReR abc", "abc", id="mixed-case-scheme"),
        pytest.param("  Bearer abc", "abc", id="leading-spaces"),
        pytest.param("\tBearer abc\t", "abc", id="surrounding-tabs"),
        pytest.param("Bearer a=", "a=", id="one-padding-character"),
        pytest.param("Bearer a==", "a==", id="two-padding-characters"),
        pytest.param(
            "Bearer " + "a" * (DEFAULT_MAX_LENGTH - 7),
            "a" * (DEFAULT_MAX_LENGTH - 7),
            id="exactly-max-length",
        ),
    ],
)
def test_parse_accepts(value: str, token: str) -> None:
    credentials = parse_authorization(value)

    assert credentials.status is CredentialsStatus.BEARER
    assert credentials.token == token


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer =", id="padding-only"),
        pytest.param("Bearer ==abc", id="padding-first"),
        pytest.param("Bearer a=b=", id="padding-twice"),
        pytest.param("Bearer a\x7fb", id="delete-character"),
        pytest.param("Bearer a\x0bb", id="vertical-tab"),
        pytest.param("Bearer a\r\nb", id="line-break"),
        pytest.param("Bearer\x00abc", id="nul-after-scheme"),
        pytest.param("Bearer abc,", id="trailing-comma"),
        pytest.param("Bearer ,abc", id="leading-comma"),
        pytest.param("Bearer abc def=", id="text-after-token"),
        pytest.param('Bearer abc realm="x"', id="parameter-after-token"),
        pytest.param("Bearer=abc", id="no-space-after-scheme"),
        pytest.param("Bearer \t abc", id="tab-between-spaces"),
        pytest.param("Bearer \u0101bc", id="non-latin-1-text"),
        pytest.param("Bearer\xa0abc", id="no-break-space"),
        pytest.param("basic abc, bearer", id="bearer-second-in-list"),
        pytest.param(
            "Bearer " + "a" * (DEFAULT_MAX_LENGTH - 6), id="one-over-max-length"
        ),
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    credentials = parse_authorization(value)

    assert credentials.status is CredentialsStatus.MALFORMED
    assert credentials.token is None
    assert credentials.reason


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer", id="scheme-alone"),
        pytest.param("Bearer    ", id="scheme-then-spaces"),
        pytest.param("Bearer\t", id="scheme-then-tab"),
    ],
)
def test_parse_empty_token(value: str) -> None:
    credentials = parse_authorization(value)

    assert credentials.status is CredentialsStatus.EMPTY
    assert credentials.token is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Bearerx abc", id="longer-scheme-name"),
        pytest.param('Digest username="ada", realm="api"', id="digest-parameters"),
        pytest.param("Basic " + "a" * 100_000, id="oversized-basic"),
        pytest.param("Basic x, Basic y", id="basic-list"),
    ],
)
def test_parse_other_scheme(value: str) -> None:
    credentials = parse_authorization(value)

    assert credentials.status is CredentialsStatus.OTHER_SCHEME
    assert credentials.token is None


def test_parse_none_is_absent() -> None:
    assert parse_authorization(None).status is CredentialsStatus.ABSENT


def test_parse_bytes_decoded_as_latin_1() -> None:
    # Every byte value decodes, so no byte sequence raises UnicodeDecodeError.
    credentials = parse_authorization(bytes(range(256)))

    assert credentials.status is CredentialsStatus.OTHER_SCHEME


def test_parse_custom_max_length() -> None:
    value = "Bearer " + "a" * 20

    assert parse_authorization(value, max_length=27).status is CredentialsStatus.BEARER
    rejected = parse_authorization(value, max_length=26)
    assert rejected.status is CredentialsStatus.MALFORMED
    assert "26" in rejected.reason


def test_credentials_repr_hides_token() -> None:
    credentials = parse_authorization("Bearer secret-token-value")

    assert "secret-token-value" not in repr(credentials)
    assert "<hidden>" in repr(credentials)


def test_malformed_reason_does_not_quote_header() -> None:
    credentials = parse_authorization("Bearer secret-token-value extra")

    assert credentials.status is CredentialsStatus.MALFORMED
    assert "secret-token-value" not in credentials.reason


def test_read_bearer_token_returns_token() -> None:
    assert read_bearer_token(b"Bearer abc.def") == "abc.def"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param("Basic abc", id="other-scheme"),
        pytest.param("Bearer", id="empty"),
        pytest.param("Bearer a b", id="malformed"),
    ],
)
def test_read_bearer_token_none(value: str | None) -> None:
    assert read_bearer_token(value) is None
