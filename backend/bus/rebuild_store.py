"""A rebuild's Redis: the fence, the outbox read, the swap, the status hash and the request queue.

The rebuild itself (tasks/rebuild.py) reads R (the outbox, then md_ticks), merges it into a fresh
state, then calls `RebuildStore.swap`, which puts that state in place of the live one in one
optimistic transaction. Why the result is exact (docs/services/rebuild.md):

- `open_fence` sets the fence BEFORE R is read. calc WATCHes the fence, so every calc commit
  after that moment buffers its ticks in the fence (B) instead of merging them; the old state only
  holds ticks accepted before the fence, all of which are in R.
- R reads the outbox first, then md_ticks: a tick accepted before the fence was, when the outbox
  was read, either in it or already deleted from it, which the flusher does only after its
  PostgreSQL commit; so it is in R either way.
- The swap WATCHes the state and the fence and, at one instant (`read_rebuild_swap`), reads B and
  the bodies of every calc message not yet acknowledged (queue, delay queue, dead letters). The
  ticks of those messages whose done-marker does not name the symbol (Pend) will still be merged
  by calc after the swap; the ones the new state already holds (D = Pend ∩ (R ∪ B)) go into the
  state's skip set, and calc drops them when their message comes.
- Not watching the message hashes is safe: a message enqueued after that read carries ticks
  accepted after R was read (so in neither R nor B unless calc buffered it, and buffering writes
  the watched fence); a message in the read that calc applies before our EXEC buffers into the
  watched fence too. Either way the EXEC aborts and the swap is computed again. A message that
  calc applied before the read has its done-marker set, so it is not in Pend and its ticks are
  in B (or, applied before the fence, in R).
- Progress: a busy symbol's calc can change the fence between every read and EXEC; after
  SEAL_AFTER_ATTEMPTS the swap seals the symbol and calc waits (briefly) instead of buffering.
  The seal decides only when calc writes, never what, so it cannot affect exactness.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis import Redis, WatchError
from redis.asyncio import Redis as AsyncRedis
from redis.client import Pipeline

from backend.bus import stats, views
from backend.bus.calc_store import RedisWindowStore
from backend.bus.enqueue import queue_message
from backend.bus.keys import CALC_ACTOR, REBUILD_ACTOR, REBUILD_QUEUE, Keys
from backend.bus.lua import read_rebuild_swap
from backend.bus.realtime import Ring
from backend.core.rebuild import FENCE_SINCE_FIELD, RebuildStatus, fence_stamp
from backend.core.ticks import Tick, decode_tick
from backend.core.view import View
from backend.core.window import Entry, WindowState

OUTBOX_PAGE = 1_000
# After this many swap attempts lost to calc (each buffered batch changes the watched fence),
# the swap seals the symbol (`Keys.rebuild_seal`) so calc waits for it instead: without this a
# busy symbol could keep the swap retrying indefinitely.
SEAL_AFTER_ATTEMPTS = 3
SEAL_TTL_MS = 2_000
ZADD_CHUNK = 5_000  # members per ZADD in the swap's MULTI


@dataclass(frozen=True, slots=True)
class SwapInput:
    """What the swap read, at one instant: the fence buffer B and the pending ticks' ids."""

    buffered: list[Tick]
    pending: list[str]  # event ids of the symbol's ticks in messages calc has not applied


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What goes in place of the live state: the state (with its skip set), the window's ticks
    and the view (None if the state has no tick)."""

    state: WindowState
    window: list[Entry]
    view: View | None


class FenceGone(Exception):
    """The fence disappeared under a rebuild (another rebuild of the symbol swapped first): what
    was read is no longer guarded, the rebuild must start over."""


def calc_message_ticks(body: bytes, symbol: str) -> tuple[str, list[str]] | None:
    """The message id and the event ids of `symbol`'s ticks in a calc message body; None for
    any other message (or an unreadable one: it can never be applied either)."""
    try:
        message = orjson.loads(body)
        if message.get("actor_name") != CALC_ACTOR:
            return None
        ticks = message["args"][0]
        ids = [t[0] for t in ticks if isinstance(t, list) and len(t) > 1 and t[1] == symbol]
        return str(message["message_id"]), ids
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return None


class RebuildStore:
    """Sync, for the rebuild (a worker thread or the CLI)."""

    def __init__(self, redis: Redis, keys: Keys, ring: Ring) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring

    def open_fence(self, symbol: str, now_us: int) -> bytes:
        """Fence the symbol (kept as is if calc or another rebuild already did: its buffer is
        the ticks nobody merged); the fence's stamp, which `swap` checks is still the same."""
        fence = self._keys.rebuild_fence(symbol)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(fence, FENCE_SINCE_FIELD, fence_stamp(now_us, uuid.uuid4().hex))
            pipe.hget(fence, FENCE_SINCE_FIELD)
            _set, stamp = pipe.execute()
        return bytes(stamp)

    def outbox_ticks(self, symbol: str) -> list[Tick]:
        """The outbox's ticks of `symbol` (each event id once), paged by stream id."""
        out: dict[str, Tick] = {}
        start = "-"
        while True:
            entries = self._redis.xrange(self._keys.outbox, min=start, count=OUTBOX_PAGE)
            for _entry_id, fields in entries:
                raw = fields.get(b"t")
                for item in orjson.loads(raw) if raw else ():
                    if item[1] == symbol:
                        tick = decode_tick(item)
                        out.setdefault(tick.event_id, tick)
            if len(entries) < OUTBOX_PAGE:
                return list(out.values())
            start = "(" + entries[-1][0].decode()

    def swap(
        self,
        symbol: str,
        rebuild: Callable[[SwapInput], Rebuilt],
        *,
        stamp: bytes,
        now_us: int,
        calc_queue: str,
        status: Callable[[Rebuilt, SwapInput], RebuildStatus],
        counters: dict[str, int],
    ) -> tuple[Rebuilt, SwapInput, int]:
        """Put `rebuild(what the swap read)` in place of the symbol's state, window and view,
        and delete the fence, in one MULTI; retried (only this step) while calc or a writer
        changes the state or the fence in between. Returns what was swapped in, what it was
        built from, and how many attempts it took. Raises FenceGone if the fence is gone, or is
        not the one R was read under (`stamp`, from `open_fence`): a fence lifted by
        another rebuild and set again leaves a stretch where calc merged unfenced, after R."""
        state_key, fence = self._keys.state(symbol), self._keys.rebuild_fence(symbol)
        hashes = [
            self._keys.queue_messages(calc_queue),
            self._keys.queue_messages(f"{calc_queue}.DQ"),
            self._keys.dead_letter_messages(calc_queue),
        ]
        seal = self._keys.rebuild_seal(symbol)
        attempts = 0
        with self._redis.pipeline() as pipe:
            while True:
                attempts += 1
                if attempts > SEAL_AFTER_ATTEMPTS:
                    self._redis.set(seal, b"1", px=SEAL_TTL_MS)
                try:
                    pipe.watch(state_key, fence)
                    raw_fence, bodies = read_rebuild_swap(pipe, fence=fence, message_hashes=hashes)
                    if raw_fence is None or raw_fence.get(_SINCE) != stamp:
                        raise FenceGone(symbol)
                    read = SwapInput(
                        buffered=_buffered(raw_fence), pending=self._pending(bodies, symbol)
                    )
                    rebuilt = rebuild(read)
                    pipe.multi()
                    self._queue_swap(pipe, symbol, rebuilt, now_us)
                    pipe.delete(fence, seal)
                    pipe.hset(
                        self._keys.rebuild_status, symbol,
                        status(rebuilt, read).model_dump_json().encode(),
                    )  # fmt: skip
                    stats.add_counters(pipe, self._keys.stats, counters)
                    pipe.execute()
                    return rebuilt, read, attempts
                except WatchError:
                    continue
                except BaseException:
                    if attempts > SEAL_AFTER_ATTEMPTS:
                        self._redis.delete(seal)
                    raise

    def _pending(self, bodies: Iterable[bytes], symbol: str) -> list[str]:
        """Event ids of `symbol`'s ticks in the messages whose done-marker does not name it."""
        messages = [m for m in (calc_message_ticks(b, symbol) for b in bodies) if m and m[1]]
        if not messages:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            for message_id, _ids in messages:
                pipe.hexists(self._keys.calc_done(message_id), symbol)
            done = pipe.execute()
        return [e for (_m, ids), applied in zip(messages, done, strict=True) if not applied
                for e in ids]  # fmt: skip

    def _queue_swap(self, pipe: Pipeline, symbol: str, rebuilt: Rebuilt, now_us: int) -> None:
        key, prices = self._keys.window(symbol), self._keys.window_prices(symbol)
        pipe.delete(key, prices)
        for start in range(0, len(rebuilt.window), ZADD_CHUNK):
            chunk = rebuilt.window[start : start + ZADD_CHUNK]
            by_time: list[bytes | int | float] = ["ZADD", key]
            by_price: list[bytes | int | float] = ["ZADD", prices]
            for entry in chunk:
                member = RedisWindowStore.member(entry)
                by_time += (entry[0], member)
                by_price += (entry[2], member)
            pipe.execute_command(*by_time)
            pipe.execute_command(*by_price)
        pipe.set(self._keys.state(symbol), rebuilt.state.to_json())
        last = rebuilt.state.last
        if rebuilt.view is not None and last is not None:
            views.queue_write(
                pipe, self._keys, self._ring, symbol=symbol, view=rebuilt.view,
                last_ts_us=last[0], last_event_id=last[1], now_us=now_us,
            )  # fmt: skip

    # --- status and counters -----------------------------------------------------------------
    def put_status(self, status: RebuildStatus, counters: dict[str, int] | None = None) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.rebuild_status, status.symbol, status.model_dump_json().encode())
            if counters:
                stats.add_counters(pipe, self._keys.stats, counters)
            pipe.execute()

    def status(self, symbol: str) -> RebuildStatus | None:
        raw = self._redis.hget(self._keys.rebuild_status, symbol)
        return RebuildStatus.model_validate_json(raw) if raw else None

    def known_symbols(self) -> set[str]:
        """Symbols Redis knows: the symbols hash and the view-order hash."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hkeys(self._keys.symbols)
            pipe.hkeys(self._keys.view_order)
            a, b = pipe.execute()
        return {s.decode() for s in (*a, *b)}


_SINCE = FENCE_SINCE_FIELD.encode()


def _buffered(raw_fence: dict[bytes, bytes]) -> list[Tick]:
    return [decode_tick(orjson.loads(v)) for k, v in raw_fence.items() if k != _SINCE]


class RebuildRequests:
    """Async, for the API: queue rebuilds, read their status, list the symbols Redis knows."""

    def __init__(self, redis: AsyncRedis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def known_symbols(self) -> set[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hkeys(self._keys.symbols)
            pipe.hkeys(self._keys.view_order)
            a, b = await pipe.execute()
        return {s.decode() for s in (*a, *b)}

    async def enqueue(self, symbols: Sequence[str], queued: Callable[[str], RebuildStatus]) -> int:
        """One `rebuild_symbols` message per symbol and its `queued` status, in one MULTI; the
        number of messages."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for symbol in symbols:
                queue_message(
                    pipe,  # type: ignore[arg-type]  # the async pipeline queues the same commands
                    self._keys, REBUILD_QUEUE, REBUILD_ACTOR, [orjson.dumps(symbol)],
                )  # fmt: skip
                pipe.hset(
                    self._keys.rebuild_status, symbol, queued(symbol).model_dump_json().encode()
                )
            await pipe.execute()
        return len(symbols)

    async def statuses(self) -> list[RebuildStatus]:
        raw = await self._redis.hgetall(self._keys.rebuild_status)
        found = [RebuildStatus.model_validate_json(v) for v in raw.values()]
        return sorted(found, key=lambda s: s.symbol)
