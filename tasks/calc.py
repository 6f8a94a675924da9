"""The calc actor's body: merge a batch into per-symbol state in Redis, store and publish W.

State lives only in Redis, so any worker can take any batch and any worker can die. The whole
update is one optimistic transaction (WATCH the states and the batch's done-marker, MULTI/EXEC),
so two workers touching one symbol never lose each other's ticks, and a redelivered batch (same
Dramatiq message id) is recognised by its marker and changes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import orjson
from redis import Redis, WatchError

from backend.bus import events
from backend.bus.keys import Keys
from backend.core.ticks import Tick
from backend.core.view import build_view
from backend.core.window import WindowState, merge

log = logging.getLogger(__name__)


def apply_batch(
    redis: Redis,
    keys: Keys,
    channel: str,
    message_id: str,
    ticks: Sequence[Tick],
    now_us: int,
    done_ttl_s: int,
) -> bool:
    """Apply `ticks` once; returns False when this message was already applied."""
    by_symbol: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_symbol[tick.symbol].append(tick)
    symbols = sorted(by_symbol)
    state_keys = [keys.state(s) for s in symbols]
    marker = keys.calc_done(message_id)
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(marker, *state_keys)
                if pipe.exists(marker):
                    return False
                raws = pipe.mget(state_keys) if state_keys else []
                pipe.multi()
                for symbol, raw in zip(symbols, raws, strict=True):
                    state = merge(WindowState.from_json(raw, symbol), by_symbol[symbol])
                    view = build_view(state, now_us)
                    pipe.set(keys.state(symbol), state.to_json())
                    if view is not None:
                        pipe.set(keys.view(symbol), orjson.dumps(view))
                        pipe.hset(keys.symbols, symbol, now_us)
                        pipe.publish(channel, events.symbol_updated(symbol, view))
                pipe.set(marker, b"1", ex=done_ttl_s)
                pipe.hincrby(keys.stats, "calc_batches", 1)
                pipe.hincrby(keys.stats, "calc_ticks", len(ticks))
                pipe.execute()
                return True
            except WatchError:
                log.debug("calc: concurrent update on %s, retrying", symbols)
                continue
