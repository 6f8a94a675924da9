"""Group commit logic (pure asyncio; the flush function is a recorder, no servers needed)."""

from __future__ import annotations

import asyncio

import pytest

from backend.bus.group_commit import GroupCommitter
from backend.bus.ingest import Outcome, Status
from backend.core.ticks import Tick


def ticks(n: int, prefix: str = "e") -> list[Tick]:
    return [Tick(f"{prefix}{i}", "AAA", i, 1.0, 1.0, "s", None, 0) for i in range(n)]


def test_concurrent_requests_share_one_flush_and_get_their_own_outcomes():
    calls: list[list[str]] = []

    async def flush(batch, spans=()):
        calls.append([t.event_id for t in batch])
        await asyncio.sleep(0.01)
        return [
            Outcome(Status.ACCEPTED if t.event_id.endswith("0") else Status.DUPLICATE)
            for t in batch
        ]

    async def main():
        gc = GroupCommitter(flush=flush, linger_s=0.005, max_batch=1000)
        await gc.start()
        results = await asyncio.gather(*(gc.submit(ticks(2, prefix=f"r{r}-")) for r in range(20)))
        await gc.stop()
        return results

    results = asyncio.run(main())
    assert len(calls) == 1 and len(calls[0]) == 40
    for r in results:
        assert [o.status for o in r] == [Status.ACCEPTED, Status.DUPLICATE]


def test_groups_are_capped_at_max_batch_without_splitting_a_request():
    sizes: list[int] = []

    async def flush(batch, spans=()):
        sizes.append(len(batch))
        return [Outcome(Status.ACCEPTED)] * len(batch)

    async def main():
        gc = GroupCommitter(flush=flush, linger_s=0.001, max_batch=10)
        await gc.start()
        await asyncio.gather(*(gc.submit(ticks(4, prefix=f"r{r}-")) for r in range(10)))
        await gc.stop()

    asyncio.run(main())
    assert sum(sizes) == 40
    assert all(size <= 10 for size in sizes)
    assert all(size % 4 == 0 for size in sizes)


def test_a_failed_hand_off_fails_every_waiter_and_the_next_group_still_runs():
    attempts = 0

    async def flush(batch, spans=()):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("redis down")
        return [Outcome(Status.ACCEPTED)] * len(batch)

    async def main():
        gc = GroupCommitter(flush=flush, linger_s=0.001)
        await gc.start()
        first = await asyncio.gather(
            gc.submit(ticks(1)), gc.submit(ticks(1, "x")), return_exceptions=True
        )
        second = await gc.submit(ticks(1, "y"))
        await gc.stop()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, ConnectionError) for r in first)
    assert second[0].status is Status.ACCEPTED


def test_submit_before_start_is_an_error():
    async def flush(batch, spans=()):
        return []

    with pytest.raises(RuntimeError):
        asyncio.run(GroupCommitter(flush=flush).submit(ticks(1)))


def test_each_request_hands_its_trace_id_with_its_ticks_in_order():
    seen: list[list[tuple[str, int]]] = []

    async def flush(batch, spans=()):
        seen.append(list(spans))
        return [Outcome(Status.ACCEPTED)] * len(batch)

    async def main():
        gc = GroupCommitter(flush=flush, linger_s=0.005, max_batch=1000)
        await gc.start()
        await asyncio.gather(gc.submit(ticks(2, "a"), "t" * 32), gc.submit(ticks(3, "b"), "u" * 32))
        await gc.stop()

    asyncio.run(main())
    assert seen == [[("t" * 32, 2), ("u" * 32, 3)]]
