"""The gateway's limits as shared through PostgreSQL by every `serve` process of one database
(on SQLite there is one process, and the limits stay in its memory).

- **Spent quotas** (`gateway_quotas`): a process that sees a Toggl quota spent records it here,
  until the reset, and tells the others at once with `NOTIFY` on `CHANNEL` (sent when the
  record commits); each process `listen`s, and reads what is recorded when it starts.
- **Rate buckets** (`gateway_rate_buckets`): one token bucket per key. A process `lease`s a few
  tokens at a time (one statement, the bucket's row locked only for it) and serves requests
  from its lease, so most requests make no trip to the database.

Times are the database's (`statement_timestamp()`), so processes on machines whose clocks
differ still agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import text

from timebridge.store.database import Database

logger = logging.getLogger(__name__)

#: The `NOTIFY` channel of spent (and forgotten) quotas.
CHANNEL = "timebridge_gateway_quotas"
#: The longest a spent quota is recorded (Toggl's quotas are hourly).
MAX_HOLD = 3600.0

_NOW = "statement_timestamp()"


@dataclass(frozen=True)
class QuotaNews:
    """What a process told the others: a quota spent for `seconds` (from when it was sent), or
    (`seconds` None) a spender to forget. `sender` is the telling process's own mark."""

    sender: str
    spender: str
    scope: str | None
    seconds: float | None

    def payload(self) -> str:
        return json.dumps(
            {"from": self.sender, "spender": self.spender, "scope": self.scope, "s": self.seconds}
        )

    @classmethod
    def parse(cls, payload: str) -> QuotaNews | None:
        try:
            data = json.loads(payload)
            seconds = data["s"]
            return cls(
                str(data["from"]),
                str(data["spender"]),
                None if data["scope"] is None else str(data["scope"]),
                None if seconds is None else float(seconds),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _available(rate: float, capacity: float) -> str:
    """SQL: what the bucket row `b` holds now (refilled since `b.at`, never above capacity)."""
    return (
        f"least({capacity!r}, b.tokens + {rate!r} * greatest(0, extract(epoch from {_NOW} - b.at)))"
    )


class GatewayLimitRepository:
    """Spent quotas and rate buckets, shared by the gateway's processes (PostgreSQL only)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # --- spent quotas ---------------------------------------------------------------------------

    async def record_spent(
        self, account_id: int, spender: str, scope: str, seconds: float, *, sender: str = ""
    ) -> None:
        """The spender's quota of `scope` is spent for `seconds` (at most `MAX_HOLD`): recorded
        (expired records go), and every listening process told when it commits."""
        seconds = min(seconds, MAX_HOLD)
        news = QuotaNews(sender, spender, scope, seconds)
        async with self._db.write_connection() as connection:
            await connection.execute(text(f"DELETE FROM gateway_quotas WHERE resets_at <= {_NOW}"))
            await connection.execute(
                text(
                    "INSERT INTO gateway_quotas (account_id, spender, scope, resets_at) "
                    f"VALUES (:account, :spender, :scope, {_NOW} + make_interval(secs => :s)) "
                    "ON CONFLICT (account_id, spender, scope) "
                    "DO UPDATE SET resets_at = excluded.resets_at"
                ),
                {"account": account_id, "spender": spender, "scope": scope, "s": seconds},
            )
            await connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": news.payload()},
            )

    async def forget_spent(self, spender: str, *, sender: str = "") -> None:
        """The spender's recorded quotas are void (its connection failed): deleted, and every
        listening process told."""
        async with self._db.write_connection() as connection:
            await connection.execute(
                text("DELETE FROM gateway_quotas WHERE spender = :spender"), {"spender": spender}
            )
            await connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": QuotaNews(sender, spender, None, None).payload()},
            )

    async def spent(self) -> list[tuple[str, str, float]]:
        """(spender, scope, seconds until it resets) of every quota spent now."""
        async with self._db.read_connection() as connection:
            rows = await connection.execute(
                text(
                    "SELECT spender, scope, "
                    "max(extract(epoch from resets_at - clock_timestamp())) "
                    "FROM gateway_quotas WHERE resets_at > clock_timestamp() "
                    "GROUP BY spender, scope"
                )
            )
            return [(str(spender), str(scope), float(left)) for spender, scope, left in rows]

    async def listen(
        self,
        on_news: Callable[[QuotaNews], None],
        *,
        on_listening: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Call `on_news` with what other processes tell, until cancelled. A dropped connection
        is made again (after `on_listening` is awaited again: news may have been missed)."""
        url = self._db.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        pause = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    if on_listening is not None:
                        await on_listening()
                    pause = 0.5
                    async for notice in connection.notifies():
                        news = QuotaNews.parse(notice.payload)
                        if news is not None:
                            on_news(news)
            except (psycopg.Error, OSError) as exc:
                logger.warning("listening for spent Toggl quotas failed (%s); again soon", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)

    # --- rate buckets ---------------------------------------------------------------------------

    async def lease(
        self, key_id: int, account_id: int, *, rate: float, capacity: float, want: int
    ) -> tuple[int, float]:
        """Take up to `want` whole tokens from the key's bucket (a full one if it has none yet).
        Returns (tokens granted, tokens left): with none granted, the next is `(1 - left) /
        rate` seconds away for every process."""
        available = _available(rate, capacity)
        granted = f"least(:want, floor({available}))"
        full = f"least(:want, floor({capacity!r}))"
        async with self._db.write_connection() as connection:
            row = (
                await connection.execute(
                    text(
                        "INSERT INTO gateway_rate_buckets AS b "
                        "(key_id, account_id, tokens, granted, at) "
                        f"VALUES (:key, :account, {capacity!r} - {full}, {full}, {_NOW}) "
                        "ON CONFLICT (key_id) DO UPDATE SET "
                        f"granted = {granted}, tokens = {available} - {granted}, "
                        f"at = greatest(b.at, {_NOW}) "
                        "RETURNING granted, tokens"
                    ),
                    {"key": key_id, "account": account_id, "want": want},
                )
            ).one()
        return int(row[0]), float(row[1])


@contextlib.asynccontextmanager
async def listening(
    repository: GatewayLimitRepository,
    on_news: Callable[[QuotaNews], None],
    on_listening: Callable[[], Awaitable[None]],
    *,
    wait: float = 5.0,
) -> AsyncIterator[None]:
    """`repository.listen` in a task while the block runs; entered once the first `LISTEN` holds
    (or after `wait` seconds, if the database cannot be reached: it keeps trying)."""
    ready = asyncio.Event()

    async def first_then_every(*_: Any) -> None:
        try:
            await on_listening()
        finally:
            ready.set()

    task = asyncio.create_task(
        repository.listen(on_news, on_listening=first_then_every), name="gateway-quota-listener"
    )
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), wait)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["CHANNEL", "GatewayLimitRepository", "QuotaNews", "listening"]
