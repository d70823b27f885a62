"""Web sign-in state: browser sessions and one-time login links.

The browser's cookie and a link's token are random secrets that never touch the database: only
their SHA-256 is stored, so a copy of the database (or a backup) signs nobody in. Every method is
one transaction and returns a plain record.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from timebridge.clock import Clock
from timebridge.store._sql import rowcount
from timebridge.store.database import Database
from timebridge.store.models import LoginLinkRow, WebSessionRow

#: A session unused for this long is signed out.
SESSION_IDLE = timedelta(days=14)
#: A session's `last_seen_at` is written at most this often (a page view is a read).
_TOUCH_EVERY = timedelta(minutes=5)
#: A login link works once, within this long.
LOGIN_LINK_LIFETIME = timedelta(minutes=10)


def digest(secret: str) -> str:
    """What is stored of a cookie's or a link's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh secret for a cookie or a link: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser, as a request sees it."""

    account_id: int
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


class SessionRepository:
    """Browser sessions: created at sign-in, touched as they are used, gone after `idle`."""

    def __init__(self, database: Database, clock: Clock, idle: timedelta = SESSION_IDLE) -> None:
        self._db = database
        self._clock = clock
        self.idle = idle

    async def create(self, account_id: int) -> tuple[str, WebSession]:
        """A new session; returns the cookie's secret (given to the browser, never stored)."""
        secret, now = new_secret(), self._clock.now()
        row = WebSessionRow(
            id=digest(secret),
            account_id=account_id,
            csrf_token=new_secret(),
            created_at=now,
            last_seen_at=now,
        )
        async with self._db.transaction() as session:
            session.add(row)
        return secret, _session(row)

    async def get(self, secret: str) -> WebSession | None:
        """The live session of a cookie's secret (touched), or None (unknown or idle too long;
        an idle one is deleted)."""
        key, now = digest(secret), self._clock.now()
        async with self._db.read() as session:
            row = await session.get(WebSessionRow, key)
            found = _session(row) if row is not None else None
        if found is None:
            return None
        if now - found.last_seen_at >= self.idle:
            await self.delete(secret)
            return None
        if now - found.last_seen_at >= _TOUCH_EVERY:
            async with self._db.transaction() as session:
                await session.execute(
                    update(WebSessionRow).where(WebSessionRow.id == key).values(last_seen_at=now)
                )
        return found

    async def delete(self, secret: str) -> None:
        """Sign this browser out."""
        async with self._db.transaction() as session:
            await session.execute(delete(WebSessionRow).where(WebSessionRow.id == digest(secret)))

    async def delete_all(self, account_id: int) -> int:
        """Sign out everywhere: every session of the account; returns how many."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(WebSessionRow).where(WebSessionRow.account_id == account_id)
            )
            return rowcount(result)

    async def purge(self) -> int:
        """Delete sessions idle for longer than `idle` (the daily purge)."""
        cutoff = self._clock.now() - self.idle
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(WebSessionRow).where(WebSessionRow.last_seen_at < cutoff)
            )
            return rowcount(result)


class LoginLinkRepository:
    """One-time sign-in links for an account."""

    def __init__(
        self, database: Database, clock: Clock, lifetime: timedelta = LOGIN_LINK_LIFETIME
    ) -> None:
        self._db = database
        self._clock = clock
        self.lifetime = lifetime

    async def create(self, account_id: int) -> tuple[str, datetime]:
        """A new link's secret (shown once) and when it expires."""
        secret, now = new_secret(), self._clock.now()
        expires_at = now + self.lifetime
        async with self._db.transaction() as session:
            session.add(
                LoginLinkRow(
                    id=digest(secret), account_id=account_id, created_at=now, expires_at=expires_at
                )
            )
        return secret, expires_at

    async def use(self, secret: str) -> int | None:
        """The account a link signs in, marking it used; None if it is unknown, used or
        expired. Two browsers racing with one link: one wins."""
        key, now = digest(secret), self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(LoginLinkRow)
                .where(
                    LoginLinkRow.id == key,
                    LoginLinkRow.used_at.is_(None),
                    LoginLinkRow.expires_at > now,
                )
                .values(used_at=now)
            )
            if rowcount(result) != 1:
                return None
            account = await session.scalar(
                select(LoginLinkRow.account_id).where(LoginLinkRow.id == key)
            )
            return int(account) if account is not None else None

    async def purge(self) -> int:
        """Delete used or expired links (the daily purge)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(LoginLinkRow).where(
                    (LoginLinkRow.expires_at <= now) | LoginLinkRow.used_at.is_not(None)
                )
            )
            return rowcount(result)


def _session(row: WebSessionRow) -> WebSession:
    return WebSession(row.account_id, row.csrf_token, row.created_at, row.last_seen_at)


__all__ = [
    "LOGIN_LINK_LIFETIME",
    "SESSION_IDLE",
    "LoginLinkRepository",
    "SessionRepository",
    "WebSession",
    "digest",
    "new_secret",
]
