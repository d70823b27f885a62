"""Gateway API keys: `tb_` + 43 base62 characters (32 random bytes) + a 6-character checksum.

The checksum (CRC-32 of the body, base62) lets a secret scanner, or the gateway before it asks
the database, tell a real key from a typo offline. The stored form is the key's SHA-256 and its
display prefix (`tb_` and the first 8 characters of the body).
"""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass

KEY_PREFIX = "tb_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Random bytes in a key.
RANDOM_BYTES = 32
#: 62**43 > 2**256: 32 random bytes always fit in 43 base62 characters.
BODY_LENGTH = 43
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
#: How much of a key is shown in lists and the audit trail.
DISPLAY_LENGTH = len(KEY_PREFIX) + 8

PROXY_READ = "proxy:read"
PROXY_WRITE = "proxy:write"
CONNECTIONS_READ = "connections:read"
CONNECTIONS_WRITE = "connections:write"
#: Every scope, in the order they are shown. None of them reveals a stored Toggl token.
SCOPES = (PROXY_READ, PROXY_WRITE, CONNECTIONS_READ, CONNECTIONS_WRITE)


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    if number:
        raise ValueError("number too large for the length")
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """The checksum of a key's body."""
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: `secret` is shown once and never stored."""

    secret: str
    prefix: str


def new_key() -> NewKey:
    """A new random key."""
    body = _base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES), "big"), BODY_LENGTH)
    secret = f"{KEY_PREFIX}{body}{checksum(body)}"
    return NewKey(secret, display_prefix(secret))


def display_prefix(key: str) -> str:
    return key[:DISPLAY_LENGTH]


def well_formed(key: str) -> bool:
    """Whether `key` has a key's shape and a correct checksum (no database needed)."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    rest = key[len(KEY_PREFIX) :]
    if any(char not in ALPHABET for char in rest):
        return False
    body, check = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return secrets.compare_digest(checksum(body), check)


def parse_scopes(scopes: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """Scopes from a comma- or space-separated text (or a list); unknown ones are a ValueError."""
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    unknown = sorted(set(items) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not items:
        raise ValueError(f"give at least one scope of {', '.join(SCOPES)}")
    return frozenset(items)


__all__ = [
    "CONNECTIONS_READ",
    "CONNECTIONS_WRITE",
    "KEY_LENGTH",
    "KEY_PREFIX",
    "PROXY_READ",
    "PROXY_WRITE",
    "SCOPES",
    "NewKey",
    "checksum",
    "display_prefix",
    "new_key",
    "parse_scopes",
    "well_formed",
]
