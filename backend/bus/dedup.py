"""The de-dup memory's start-up step (the API runs it once before it ingests anything).

- Upgrade: Redis may still hold pre-upgrade keys (`<ns>:dedup:<event_id>` strings). On the first
  start of the compact format in a namespace (no format key yet), one SCAN looks for any (for at
  most SCAN_BUDGET_S: a Redis too large to tell by then is assumed to hold some); if one
  exists, the legacy marker is set for DEDUP_TTL, and while it exists the ingest script consults
  `<ns>:dedup:<event_id>` on a miss (one GET per new tick, nothing per duplicate). DEDUP_TTL is
  enough: a resend is refused once its ts is MAX_TICK_AGE old, and MAX_TICK_AGE +
  MAX_FUTURE_SKEW <= DEDUP_TTL, so no pre-upgrade tick can be accepted again later than DEDUP_TTL
  after the first start. (Stop the old API replicas first: a mixed fleet does not share memory.)
- Layout: hashes are named by their layout (`DedupLayout.tag`). A start with another layout than
  the one recorded, while the recorded layout's hashes still exist, is refused: the new layout
  could not see them and resends would be counted twice.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from backend.bus.keys import Keys
from backend.core.dedup import DedupLayout

log = logging.getLogger(__name__)


class DedupLayoutChanged(RuntimeError):
    """DEDUP_TTL / DEDUP_GENERATIONS / DEDUP_SHARDS changed while the old layout is live."""


# How long start-up may walk the keyspace looking for a key: SCAN is O(all keys), and a Redis
# holding a day of one-key-per-event-id de-dup (the pre-upgrade format) has hundreds of millions.
SCAN_BUDGET_S = 2.0


async def _any_key(redis: Redis, pattern: str, budget_s: float | None = None) -> bool | None:
    """Whether a key matches `pattern`; None when the budget (default SCAN_BUDGET_S) ran out
    before SCAN could tell (callers then assume one may exist: both checks are safe that way)."""
    deadline = time.monotonic() + (SCAN_BUDGET_S if budget_s is None else budget_s)
    cursor = 0
    while True:
        cursor, found = await redis.scan(cursor=cursor, match=pattern, count=10_000)
        if found:
            return True
        if cursor == 0:
            return False
        if time.monotonic() > deadline:
            return None


async def prepare_dedup(redis: Redis, keys: Keys, layout: DedupLayout) -> None:
    recorded = await redis.get(keys.dedup_format)
    if recorded is None:
        if await _any_key(redis, keys.dedup_prefix + "*") is not False:
            await redis.set(keys.dedup_legacy_marker, b"1", ex=layout.ttl_s, nx=True)
            log.info(
                "pre-upgrade de-dup keys found: consulted on a miss for the next %d s",
                layout.ttl_s,
            )
    elif (
        recorded.decode() != layout.tag
        and await _any_key(redis, keys.dedup_hashes(recorded.decode()) + "*") is not False
    ):
        raise DedupLayoutChanged(
            f"the de-dup layout changed from {recorded.decode()} to {layout.tag} (DEDUP_TTL, "
            "DEDUP_GENERATIONS or DEDUP_SHARDS) while event ids remembered under the old one are "
            "still live: a resend of them would be counted twice. Restore the old settings "
            f"until the keys {keys.dedup_hashes(recorded.decode())}* have expired (at most "
            "the old DEDUP_TTL plus one generation), or delete them knowingly."
        )
    await redis.set(keys.dedup_format, layout.tag)
