"""Token generation and the digests that Redis keys are made of, with no I/O.

A token is ``<user tag>.<secret>``:

- the user tag is 12 base64url characters (72 bits) of a SHA-256 digest of the
  user id. Every key of one user carries it as a Redis Cluster hash tag, so a
  session, its successor and the user's index share one hash slot and each
  multi-key step can run as one atomic script;
- the secret is 32 bytes from :mod:`secrets` (256 bits), base64url encoded.

Redis never receives a token. A session key ends with 22 base64url characters
(132 bits) of SHA-256 over the whole token. The lengths are as short as their
jobs allow, because every byte is stored once per session in the key and once
in the user's index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import re
import secrets
import sys
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "CHECK_LENGTH",
    "TOKEN_PATTERN",
    "is_token_shaped",
    "new_token",
    "open_successor",
    "seal_successor",
    "token_digest",
    "token_user_tag",
    "user_tag",
]

USER_TAG_LENGTH = 12
SECRET_BYTES = 32
DIGEST_LENGTH = 22
#: Characters of the token digest that a stored record repeats, so a reply
#: read for one key is recognised when it belongs to another.
CHECK_LENGTH = 8

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}")

_SUCCESSOR_CONTEXT = b"bearer_mw successor token\x00"
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    # The steps of base64.urlsafe_b64encode without its two Python wrapper
    # calls, because token_digest runs on every request.
    encoded = binascii.b2a_base64(data, newline=False).translate(_URLSAFE)
    return encoded.rstrip(b"=").decode("ascii")


def user_tag(user_id: str) -> str:
    """Derive the hash tag shared by every key of ``user_id``.

    Raises ConfigurationError when ``user_id`` is not a str or cannot be
    encoded as UTF-8 (a lone surrogate, for example).
    """
    if not isinstance(user_id, str):
        raise ConfigurationError(f"user_id must be a str, got {type(user_id).__name__}")
    try:
        encoded = user_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(f"user_id is not valid Unicode text: {exc}") from exc
    digest = hashlib.sha256(b"bearer_mw user\x00" + encoded)
    return _b64(digest.digest())[:USER_TAG_LENGTH]


def new_token(tag: str) -> str:
    """Create a fresh token for the user whose tag is ``tag``."""
    return f"{tag}.{secrets.token_urlsafe(SECRET_BYTES)}"


def is_token_shaped(token: str) -> bool:
    """Tell whether ``token`` has the shape of a token this library issues."""
    return TOKEN_PATTERN.fullmatch(token) is not None


def token_user_tag(token: str) -> str:
    """Return the user tag of a token that :func:`is_token_shaped` accepted."""
    return token[:USER_TAG_LENGTH]


# SHA-256 of b"abc", which a candidate constructor must reproduce.
_SHA256_OF_ABC = bytes.fromhex(
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
)


def _openssl_fips_mode() -> bool:
    """Return whether OpenSSL, behind hashlib, runs in FIPS mode."""
    try:
        module = importlib.import_module("_hashlib")
    except ImportError:
        return False
    get_fips_mode = getattr(module, "get_fips_mode", None)
    return callable(get_fips_mode) and bool(get_fips_mode())


def _request_sha256() -> Callable[[bytes], Any]:
    """Return the SHA-256 constructor for the digest made on every request.

    CPython's own SHA-256 module comes first. In a measured request loop
    against Redis, a digest through it cost about 2 µs less than through
    OpenSSL, which ``hashlib.sha256`` uses, and about 700 fewer instructions
    (``docs/performance-notes.md``). ``hashlib.sha256`` stays in use on other
    Pythons, when OpenSSL runs in FIPS mode, and when CPython was built without
    that module (see ``--with-builtin-hashlib-hashes``). It also stays when the
    module gives a wrong digest for ``b"abc"``, as a same-named file on
    ``sys.path`` could.
    """
    if sys.implementation.name != "cpython" or _openssl_fips_mode():
        return hashlib.sha256
    # The module is _sha2 from Python 3.12 on, and _sha256 before.
    name = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
    try:
        module = importlib.import_module(name)
    except ImportError:
        return hashlib.sha256
    constructor = getattr(module, "sha256", None)
    if not callable(constructor):
        return hashlib.sha256
    try:
        correct = constructor(b"abc").digest() == _SHA256_OF_ABC
    except Exception:
        # A module that fails on b"abc" in any way is not used.
        correct = False
    if not correct:
        return hashlib.sha256
    return constructor  # type: ignore[no-any-return]


_REQUEST_SHA256 = _request_sha256()


def token_digest(token: str) -> str:
    """Digest a token into the form that names its session in Redis."""
    # _b64 written out, because this runs on every request. The digest is cut
    # before decoding, so the padding never needs stripping.
    digest = _REQUEST_SHA256(token.encode("ascii")).digest()
    encoded = binascii.b2a_base64(digest, newline=False)[:DIGEST_LENGTH]
    return encoded.translate(_URLSAFE).decode("ascii")


def _successor_keystream(old_token: str, length: int) -> bytes:
    # SHAKE-256 is an extendable-output function, so it yields a keystream of
    # any length. Each old token has at most one stored successor, so the
    # keystream is never reused for a different stored plaintext.
    material = _SUCCESSOR_CONTEXT + old_token.encode("ascii")
    return hashlib.shake_256(material).digest(length)


def seal_successor(old_token: str, successor: str) -> str:
    """Encrypt ``successor`` under a key that only ``old_token`` can derive.

    Redis stores the result for the renewal grace window; without the old
    token, which Redis never receives, it cannot be turned back into a token.
    """
    plain = successor.encode("ascii")
    stream = _successor_keystream(old_token, len(plain))
    return _b64(bytes(a ^ b for a, b in zip(plain, stream, strict=True)))


def open_successor(old_token: str, sealed: str, expected_digest: str) -> str | None:
    """Decrypt a sealed successor; return None unless it has the stored digest."""
    try:
        cipher = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except ValueError:
        return None
    stream = _successor_keystream(old_token, len(cipher))
    plain = bytes(a ^ b for a, b in zip(cipher, stream, strict=True))
    try:
        successor = plain.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not is_token_shaped(successor):
        return None
    if not hmac.compare_digest(token_digest(successor), expected_digest):
        return None
    return successor
