"""The senders: closed-loop batch POSTs at a target rate that re-send on 429 like the feeder."""

from __future__ import annotations

import asyncio
import itertools

import httpx

from feeder.outcomes import parse_retry_after
from tests.bench.overload.ledger import Ledger, Tally
from tests.bench.overload.options import Options
from tests.support.processes import AUTH

JSON_HEADERS = {"content-type": "application/json"}
GRACE_S = 30.0  # after the deadline, how long a sender keeps retrying an unanswered batch


async def deliver(
    client: httpx.AsyncClient, ledger: Ledger, tally: Tally, k: int, body: bytes, deadline: float
) -> None:
    """POST one batch until it is answered, re-sending the same bytes like the feeder does."""
    loop = asyncio.get_running_loop()
    n = ledger.sizes[k]
    failures = 0
    while True:
        tally.requests += 1
        tally.posted += n
        sent = loop.time()
        try:
            r = await client.post("/ingest/ticks", content=body, headers=JSON_HEADERS)
            tally.latencies.append(loop.time() - sent)
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            failures += 1
            if loop.time() >= deadline + GRACE_S:
                ledger.unknown.add(k)
                tally.unknown += n
                return
            await asyncio.sleep(min(0.1 * 2**failures, 2.0))
            continue
        if r.status_code == 200:
            answer = r.json()
            tally.accepted += answer["accepted"]
            tally.duplicates += answer["duplicates"]
            rejected = {item["index"] for item in answer["rejected"]}
            tally.rejected += len(rejected)
            ledger.acked[k] = [i for i in range(n) if i not in rejected] if rejected else None
            return
        if r.status_code == 429:
            tally.http_429 += 1
            tally.shed += n
            await asyncio.sleep(parse_retry_after(r.headers.get("retry-after")) or 1.0)
            if loop.time() >= deadline:  # time is up: a 429 wrote nothing, so just stop
                ledger.refused.add(k)
                tally.abandoned += n
                return
            continue
        tally.errors[f"HTTP {r.status_code}"] += 1
        if r.status_code >= 500 and loop.time() < deadline + GRACE_S:
            await asyncio.sleep(1.0)
            continue
        (ledger.unknown if r.status_code >= 500 else ledger.failed).add(k)
        if r.status_code >= 500:
            tally.unknown += n
        return


async def offer(
    api_url: str, ledger: Ledger, tally: Tally, opts: Options, *, tps: float | None, seconds: float
) -> float:
    """Offer `tps` ticks/s (None: as fast as they go) for `seconds` from `opts.senders` senders
    in batches of `opts.batch`; returns the time it took.

    Batch j is due at start + j * batch / tps. A sender that was busy re-sending takes the next
    due batch at once, so the offered demand never drops below the target while senders are free.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds
    senders, batch = opts.senders, opts.batch
    interval = batch / tps if tps else 0.0
    slots = itertools.count()
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(
        base_url=api_url, auth=AUTH, timeout=30.0, limits=limits
    ) as client:

        async def sender() -> None:
            while True:
                due = start + next(slots) * interval
                if due >= deadline or loop.time() >= deadline:
                    return
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                k, body = ledger.new_batch(batch)
                tally.batches += 1
                tally.offered += batch
                await deliver(client, ledger, tally, k, body, deadline)

        await asyncio.gather(*(sender() for _ in range(senders)))
    return loop.time() - start
