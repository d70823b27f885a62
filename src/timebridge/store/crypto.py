"""Secrets at rest: Toggl and Exist tokens are stored as Fernet ciphertext, never in clear.

Keys come from `TIMEBRIDGE_SECRET_KEYS` (comma-separated) or, for the embedded default, from a
key file in the data directory that is generated (mode 0600) on first start. Several keys make
rotation possible: the first encrypts, every key decrypts, and `SecretBox.rotate` re-encrypts a
ciphertext with the first key. A new key goes first in the list, `timebridge secrets rotate`
re-encrypts everything, and then the old keys can be removed.

Neither keys nor plaintexts ever appear in a repr or an exception message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from timebridge.config import Settings
from timebridge.store.database import make_private_directory
from timebridge.store.errors import SecretKeyError, UndecryptableSecret

logger = logging.getLogger(__name__)


def new_key() -> str:
    """A fresh Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> list[str]:
    """Keys from a comma- or newline-separated list; blank items and `#` comments are skipped."""
    keys: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys.extend(item.strip() for item in line.split(",") if item.strip())
    return keys


class SecretBox:
    """Encrypts and decrypts the secrets the store keeps; the first key encrypts."""

    def __init__(self, keys: Sequence[str | bytes | SecretStr]) -> None:
        if not keys:
            raise SecretKeyError("no secret keys configured")
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            raw = key.get_secret_value() if isinstance(key, SecretStr) else key
            try:
                fernets.append(Fernet(raw))
            except (ValueError, TypeError):
                # Say which key, never what it is.
                raise SecretKeyError(
                    f"secret key #{position} is not a Fernet key (url-safe base64 of 32 bytes)"
                ) from None
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)
        self._count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._count})"

    @property
    def key_count(self) -> int:
        return self._count

    def encrypt(self, plaintext: str | SecretStr) -> str:
        """Ciphertext of `plaintext` under the first key."""
        value = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
        return self._primary.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> SecretStr:
        """The plaintext, wrapped so that it cannot be printed or logged by accident."""
        try:
            return SecretStr(self._all.decrypt(ciphertext.encode("ascii")).decode("utf-8"))
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """The same secret re-encrypted under the first key."""
        try:
            return self._all.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None

    def is_primary(self, ciphertext: str) -> bool:
        """Whether the first key alone decrypts this ciphertext (rotation is done for it)."""
        try:
            self._primary.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool | None = None) -> SecretBox:
        """The box for these settings: `TIMEBRIDGE_SECRET_KEYS` if set, else the key file.

        `create` says whether a missing key file may be generated; by default only for the
        embedded SQLite store. Servers sharing PostgreSQL must share keys, and a key generated
        on one machine would make every other one unable to read what it wrote, so there a
        missing key is an error instead.
        """
        if settings.secret_keys is not None:
            keys = parse_keys(settings.secret_keys.get_secret_value())
            if not keys:
                raise SecretKeyError("TIMEBRIDGE_SECRET_KEYS is set but holds no key")
            return cls(keys)
        may_create = settings.is_sqlite if create is None else create
        path = settings.key_file
        if not path.exists():
            if not may_create:
                raise SecretKeyError(
                    "no secret keys: set TIMEBRIDGE_SECRET_KEYS (comma-separated Fernet keys; "
                    "`timebridge secrets new-key` makes one)"
                )
            return cls(ensure_key_file(path))
        return cls(read_key_file(path))


def read_key_file(path: Path) -> list[str]:
    """The keys in a key file, first (encrypting) key first."""
    try:
        keys = parse_keys(path.read_text(encoding="ascii"))
    except (OSError, UnicodeError) as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc.__class__.__name__}") from None
    if not keys:
        raise SecretKeyError(f"the key file {path} holds no key")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning(
            "the secret key file is readable by others; it should be mode 0600",
            extra={"path": str(path), "mode": oct(mode)},
        )
    return keys


def ensure_key_file(path: Path) -> list[str]:
    """The key file's keys, generating the file (one new key, mode 0600) if it is missing.

    The file appears complete or not at all (written aside, then linked into place), and if two
    processes start at once, both end up with the one key that won.
    """
    if path.exists():
        return read_key_file(path)
    make_private_directory(path.parent)  # 0700: it holds the key and the database
    write_key_file(path, [new_key()], replace=False)
    logger.info("generated a secret key file", extra={"path": str(path)})
    return read_key_file(path)


def write_key_file(path: Path, keys: Sequence[str], *, replace: bool = True) -> None:
    """Write `keys` (first one encrypts) to `path` with mode 0600, atomically.

    With `replace=False` an existing file wins and is left untouched.
    """
    SecretBox(keys)  # refuse to write a file that could not be loaded back
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            # The umask may have taken bits away, never added any; make the mode exact anyway.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(
                "# Timebridge secret keys: the first encrypts, all decrypt. Keep this file "
                "private.\n"
            )
            handle.writelines(f"{key}\n" for key in keys)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(aside, path)
        else:
            # Another process created it first: its key wins.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
