"""`Batcher`: calls that arrive while a batch runs are served together by the next one."""

from __future__ import annotations

import asyncio

import pytest

from timebridge.store._batching import Batcher


class Recorder:
    """A batch function that remembers its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.gate.wait()
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]


async def test_a_lone_call_runs_at_once_and_calls_during_a_batch_share_the_next() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder)
    assert await batcher.submit(2) == 20

    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0)  # its batch is under way, held open
    await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.submit(n)) for n in (6, 8, 10)]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await first == 40
    assert [await task for task in later] == [60, 80, 100]
    assert recorder.batches == [[2], [4], [6, 8, 10]]
    assert (batcher.batches, batcher.items) == (3, 5)


async def test_an_item_that_fails_fails_its_own_caller_only() -> None:
    batcher = Batcher(Recorder())
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in (2, 3, 4)), return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2] == 40
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "odd 3"


async def test_a_batch_that_fails_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    calls = []

    async def broken(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        if len(calls) == 1:
            raise ConnectionError("database gone")
        return list(items)

    batcher = Batcher(broken)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in (1, 2)), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError, ConnectionError]
    assert await batcher.submit(3) == 3


async def test_batches_hold_at_most_max_size_items() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=2)
    results = await asyncio.gather(*(batcher.submit(n) for n in (2, 4, 6, 8, 10)))
    assert results == [20, 40, 60, 80, 100]
    assert recorder.batches == [[2, 4], [6, 8], [10]]
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(recorder, max_size=0)


async def test_a_cancelled_caller_leaves_the_others_served_and_wait_idle_waits_for_all() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = Batcher(recorder)
    leaving = asyncio.create_task(batcher.submit(2))
    staying = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    leaving.cancel()
    idle = asyncio.create_task(batcher.wait_idle())
    await asyncio.sleep(0)
    assert not idle.done()
    recorder.gate.set()

    await idle
    assert await staying == 40
    assert leaving.cancelled()
    assert recorder.batches == [[2, 4]]  # the item ran all the same
