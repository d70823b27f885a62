"""`Batcher`: concurrent calls served together, the way databases group their commits.

An engine runs many users at once, and each run reads its context and writes its record: short
statements whose cost is mostly the fixed part (a transaction, a trip to the database, SQLAlchemy
building a result), not the rows. A `Batcher` lets the calls that arrive while one batch is under
way wait for the next batch, which takes them all. There is no timer: a call that finds no batch
under way starts one at once, so a lone run waits for nothing, and under load each call pays a
share of one transaction instead of a transaction of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs `run_batch` over the items of concurrent `submit` calls, a batch at a time.

    `run_batch(items)` returns one outcome per item, in order: a result, or an exception for
    that item's caller alone. If `run_batch` itself raises, every caller of that batch gets the
    exception. One batch runs at a time, of at most `max_size` items.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_size: int = 64,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._run_batch = run_batch
        self._max_size = max_size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._worker: asyncio.Task[None] | None = None
        #: Batches run so far, and the items they held (for metrics and tests).
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        """`item`'s outcome, once the batch it joined has run."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="timebridge-batcher")
        return await future

    async def wait_idle(self) -> None:
        """Return once every submitted item has been run (the owner closing down)."""
        while self._worker is not None:
            await asyncio.shield(self._worker)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_size]
                del self._waiting[: self._max_size]
                await self._run(batch)
        finally:
            self._worker = None
            # Only when the worker itself was stopped (its loop closing): nobody waits forever.
            stranded, self._waiting = self._waiting, []
            for _, future in stranded:
                if not future.done():
                    future.set_exception(RuntimeError("the batch worker stopped"))

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = await self._run_batch([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(outcomes)} outcomes")
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled or exiting: the caller's task learns it too
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled; the item ran all the same
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
