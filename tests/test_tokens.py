"""Tests of token generation, token digests and sealed successor tokens."""

from __future__ import annotations

import base64
import hashlib
import importlib
import re
import sys
from types import ModuleType, SimpleNamespace

import pytest

from bearer_mw import read_bearer_token
from bearer_mw import tokens as tokens_module
from bearer_mw.header import CredentialsStatus, parse_authorization
from bearer_mw.tokens import (
    DIGEST_LENGTH,
    SECRET_BYTES,
    TOKEN_PATTERN,
    USER_TAG_LENGTH,
    is_token_shaped,
    new_token,
    open_successor,
    seal_successor,
    token_digest,
    token_user_tag,
    user_tag,
)

# RFC 6750 b64token without the trailing "=" padding.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+")
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip_character(text: str, position: int) -> str:
    """Flip the highest of the six bits that the character at ``position`` encodes.

    The highest bit is never padding, so the decoded bytes change too.
    """
    value = BASE64URL_ALPHABET.index(text[position])
    replacement = BASE64URL_ALPHABET[value ^ 0b100000]
    return text[:position] + replacement + text[position + 1 :]


# Token shape


def test_new_token_shape() -> None:
    tag = user_tag("alice")

    token = new_token(tag)

    prefix, secret = token.split(".")
    assert prefix == tag
    assert len(prefix) == USER_TAG_LENGTH
    assert BASE64URL.fullmatch(secret)
    assert TOKEN_PATTERN.fullmatch(token)
    assert is_token_shaped(token)
    assert token_user_tag(token) == tag


def test_new_token_secret_has_160_bits_or_more() -> None:
    secret = new_token(user_tag("alice")).split(".")[1]

    assert SECRET_BYTES * 8 >= 160
    assert len(decode_b64url(secret)) == SECRET_BYTES


def test_new_token_secret_bits_vary() -> None:
    secrets_seen = [
        int.from_bytes(decode_b64url(new_token(user_tag("alice")).split(".")[1]))
        for _ in range(500)
    ]
    all_ones = (1 << (SECRET_BYTES * 8)) - 1
    ones = 0
    zeros = 0
    for value in secrets_seen:
        ones |= value
        zeros |= ~value & all_ones

    assert len(set(secrets_seen)) == len(secrets_seen)
    assert ones == all_ones
    assert zeros == all_ones


def test_new_token_uses_b64token_alphabet() -> None:
    for _ in range(200):
        token = new_token(user_tag("alice"))

        assert B64TOKEN.fullmatch(token)
        assert "=" not in token


def test_read_bearer_token_accepts_issued_tokens() -> None:
    for index in range(200):
        token = new_token(user_tag(f"user-{index}"))

        assert read_bearer_token(f"Bearer {token}") == token
        assert read_bearer_token(f"bearer {token}".encode("latin-1")) == token
        assert parse_authorization(f"Bearer {token}").status is (
            CredentialsStatus.BEARER
        )


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("A" * USER_TAG_LENGTH, id="tag-only"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42, id="short-secret"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 44, id="long-secret"),
        pytest.param("A" * (USER_TAG_LENGTH - 1) + "." + "B" * 43, id="short-tag"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42 + "=", id="padding"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42 + "+", id="plus"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42 + "/", id="slash"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 43 + "\n", id="newline"),
        pytest.param(" " + "A" * USER_TAG_LENGTH + "." + "B" * 42, id="space"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42 + "é", id="non-ascii"),
        pytest.param("A" * USER_TAG_LENGTH + "." + "B" * 42 + "٣", id="arabic-digit"),
        pytest.param("A" * USER_TAG_LENGTH + "|" + "B" * 43, id="wrong-separator"),
    ],
)
def test_is_token_shaped_rejects(token: str) -> None:
    assert not is_token_shaped(token)


# Digests


def test_user_tag_is_stable_and_short() -> None:
    expected = b64url(hashlib.sha256(b"bearer_mw user\x00alice").digest())

    tag = user_tag("alice")

    assert tag == expected[:USER_TAG_LENGTH]
    assert user_tag("alice") == tag
    assert BASE64URL.fullmatch(tag)
    assert "{" not in tag
    assert "}" not in tag


@pytest.mark.parametrize(
    "user_ids",
    [
        pytest.param(("alice", "Alice", "alice ", ""), id="similar"),
        pytest.param(("é", "e\u0301"), id="unnormalised"),
        pytest.param(("a\x00b", "a"), id="nul"),
    ],
)
def test_user_tag_differs_between_users(user_ids: tuple[str, ...]) -> None:
    tags = {user_tag(user_id) for user_id in user_ids}

    assert len(tags) == len(user_ids)


def test_token_digest_is_stable() -> None:
    token = "AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
    full = b64url(hashlib.sha256(token.encode("ascii")).digest())

    digest = token_digest(token)

    assert digest == full[:DIGEST_LENGTH]
    assert token_digest(token) == digest
    assert DIGEST_LENGTH * 6 >= 128
    assert BASE64URL.fullmatch(digest)


def test_token_digest_differs_per_token() -> None:
    tag = user_tag("alice")
    tokens = [new_token(tag) for _ in range(200)]

    digests = {token_digest(token) for token in tokens}

    assert len(digests) == len(tokens)
    for token in tokens:
        assert token.split(".")[1] not in token_digest(token)


def test_token_digest_matches_hashlib_sha256() -> None:
    tags = [user_tag(f"user-{index}") for index in range(50)]
    tokens = [new_token(tag) for tag in tags for _ in range(20)]

    for token in tokens:
        expected = b64url(hashlib.sha256(token.encode("ascii")).digest())
        assert token_digest(token) == expected[:DIGEST_LENGTH]


def test_token_digest_rejects_non_ascii() -> None:
    token = "A" * USER_TAG_LENGTH + "." + "B" * 42 + "é"

    with pytest.raises(UnicodeEncodeError):
        token_digest(token)


def test_request_sha256_prefers_cpython_module() -> None:
    chosen = tokens_module._REQUEST_SHA256

    assert chosen is not hashlib.sha256
    assert chosen.__module__ in {"_sha2", "_sha256"}


def test_request_sha256_falls_back_to_hashlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = importlib.import_module

    def without_builtin(name: str, package: str | None = None) -> ModuleType:
        if name in {"_sha2", "_sha256"}:
            raise ImportError(f"no module named {name}")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_builtin)

    assert tokens_module._request_sha256() is hashlib.sha256


def fake_sha256_module(constructor: object) -> ModuleType:
    module = ModuleType("fake_sha256")
    module.sha256 = constructor  # type: ignore[attr-defined]
    return module


def test_request_sha256_check_value_is_sha256_of_abc() -> None:
    assert hashlib.sha256(b"abc").digest() == tokens_module._SHA256_OF_ABC


def test_request_sha256_rejects_wrong_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = importlib.import_module

    def shadowed(name: str, package: str | None = None) -> ModuleType:
        if name in {"_sha2", "_sha256"}:
            return fake_sha256_module(hashlib.md5)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", shadowed)

    assert tokens_module._request_sha256() is hashlib.sha256


def test_request_sha256_imports_only_own_version_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = importlib.import_module
    requested: list[str] = []

    def recording(name: str, package: str | None = None) -> ModuleType:
        requested.append(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", recording)
    tokens_module._request_sha256()

    expected = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
    other = "_sha256" if expected == "_sha2" else "_sha2"
    assert expected in requested
    assert other not in requested


def test_request_sha256_uses_hashlib_in_fips_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens_module, "_openssl_fips_mode", lambda: True)

    assert tokens_module._request_sha256() is hashlib.sha256


def test_request_sha256_uses_hashlib_outside_cpython(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "implementation", SimpleNamespace(name="pypy"))

    assert tokens_module._request_sha256() is hashlib.sha256


# Sealed successors


def test_seal_successor_round_trips() -> None:
    old = new_token(user_tag("alice"))
    successor = new_token(user_tag("alice"))

    sealed = seal_successor(old, successor)

    assert open_successor(old, sealed, token_digest(successor)) == successor


def test_seal_successor_hides_successor() -> None:
    old = new_token(user_tag("alice"))
    successor = new_token(user_tag("alice"))

    sealed = seal_successor(old, successor)

    assert successor.split(".")[1] not in sealed
    assert BASE64URL.fullmatch(sealed)
    assert sealed != seal_successor(new_token(user_tag("alice")), successor)


def test_open_successor_rejects_wrong_old_token() -> None:
    old = new_token(user_tag("alice"))
    successor = new_token(user_tag("alice"))
    sealed = seal_successor(old, successor)

    for wrong in (new_token(user_tag("alice")), flip_character(old, len(old) - 2)):
        assert open_successor(wrong, sealed, token_digest(successor)) is None


def test_open_successor_rejects_tampered_digest() -> None:
    old = new_token(user_tag("alice"))
    successor = new_token(user_tag("alice"))
    sealed = seal_successor(old, successor)
    digest = token_digest(successor)

    for tampered in (flip_character(digest, 0), token_digest(old), "", digest[:-1]):
        assert open_successor(old, sealed, tampered) is None


def test_open_successor_rejects_tampered_ciphertext() -> None:
    old = new_token(user_tag("alice"))
    successor = new_token(user_tag("alice"))
    sealed = seal_successor(old, successor)
    digest = token_digest(successor)

    for position in range(len(sealed)):
        tampered = flip_character(sealed, position)
        assert open_successor(old, tampered, digest) is None


@pytest.mark.parametrize(
    "sealed",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!!", id="outside-alphabet"),
        pytest.param("A", id="one-character"),
        pytest.param("////", id="standard-alphabet"),
        pytest.param("gICA", id="not-ascii"),
    ],
)
def test_open_successor_rejects_garbage(sealed: str) -> None:
    old = new_token(user_tag("alice"))

    assert open_successor(old, sealed, token_digest(old)) is None
