"""The compact de-duplication memory's pure parts: digests, shards and generations.

Redis remembers an accepted event_id as ONE field of a small hash (docs/architecture.md,
"De-duplication"): the field is an 8-byte digest of the event_id, the value a 14-byte digest of
the tick's content (8 bytes over the whole content, then one byte per content field, so a
conflict can name the fields that differ). Hashes are keyed by (generation, shard):

- the generation is the arrival time (the caller's clock, passed in) divided into
  `generation_s`-long slices; an entry is written into the current one, looked up in every live
  one, and a generation's key expires `ttl_s` after the generation ENDS, so every entry lives at
  least `ttl_s` (and at most `ttl_s + generation_s`: the memory slack);
- the shard comes from digest bits the field does not use, and `shards` is sized so that at the
  rate the settings claim each hash stays far below Redis's small-encoding entry limit (128
  entries: listpack/ziplist, ~26 B per entry instead of ~100 B in a hashtable).

Collisions: two different event ids share a (shard, field) with probability ~2^-(64+log2 shards)
per pair; then the second looks seen, its content digest differs (unless the two 64-bit content
digests also collide) and it is refused with a loud 409, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from hashlib import blake2b

import orjson

from backend.core.ticks import CONTENT_FIELDS, Tick

ID_DIGEST_BYTES = 8
CONTENT_DIGEST_BYTES = 8
VALUE_BYTES = CONTENT_DIGEST_BYTES + len(CONTENT_FIELDS)
# Redis's default hash-max-listpack-entries (hash-max-ziplist-entries in 6.2): one entry more
# and a hash converts to a hashtable, ~4x the memory per entry.
SMALL_HASH_ENTRIES = 128
# The mean entries per hash the shard count is sized for: at a Poisson mean of 64 the chance that
# one hash passes 128 is ~1e-12, so none of ~10^6 hashes does in practice.
TARGET_FILL = 64
# The defaults (settings DEDUP_TTL, DEDUP_GENERATIONS, DEDUP_SHARDS) are sized for this rate:
# 10,000 ticks/s for DEDUP_TTL * (1 + 1/DEDUP_GENERATIONS) s at the measured ~30 B per entry
# fit in 2 GiB (docs/benchmarks/dedup-memory.md); each hash holds ~64 entries at that rate.
DESIGN_RATE = 10_000
DEFAULT_DEDUP_TTL = 3_600
DEFAULT_GENERATIONS = 3
DEFAULT_SHARDS = 187_500  # shards_for(DESIGN_RATE, DEFAULT_DEDUP_TTL, DEFAULT_GENERATIONS)
_FIELD_KEYS = tuple(name.encode() for name in CONTENT_FIELDS)


@dataclass(frozen=True, slots=True)
class DedupLayout:
    """How entries are spread over keys: `ttl_s` remembered at least, in `generations` slices of
    the window, `shards` hashes per slice."""

    ttl_s: int
    generations: int
    shards: int

    @property
    def generation_s(self) -> int:
        return math.ceil(self.ttl_s / self.generations)

    @property
    def tag(self) -> str:
        """Part of every key name: a layout change never reads another layout's hashes."""
        return f"{self.generation_s}x{self.shards}"

    def generation(self, now_s: float) -> int:
        return math.floor(now_s) // self.generation_s

    def live_generations(self) -> int:
        """How many generations hold live entries at any moment: the current one and the
        ceil(ttl / generation_s) (at most `generations`) before it."""
        return math.ceil(self.ttl_s / self.generation_s) + 1

    def expire_s(self, generation: int, now_s: float) -> int:
        """Seconds from `now_s` until `generation`'s key may go: `ttl_s` after it ends."""
        return max(1, (generation + 1) * self.generation_s + self.ttl_s - math.floor(now_s))

    def retained_s(self) -> int:
        """The longest an entry is kept: what memory must be sized for."""
        return self.ttl_s + self.generation_s

    def mean_fill(self, rate_per_s: float) -> float:
        """Mean entries per hash at `rate_per_s` accepted ticks per second."""
        return rate_per_s * self.generation_s / self.shards


def shards_for(rate_per_s: float, ttl_s: int, generations: int, fill: int = TARGET_FILL) -> int:
    """The shard count that keeps the mean hash at `fill` entries at `rate_per_s`."""
    return max(1, math.ceil(rate_per_s * math.ceil(ttl_s / generations) / fill))


def id_digest(event_id: str, shards: int) -> tuple[int, bytes]:
    """(shard, field) of an event_id: the field is 8 digest bytes, the shard from 8 others."""
    digest = blake2b(event_id.encode(), digest_size=16).digest()
    return int.from_bytes(digest[8:], "big") % shards, digest[:ID_DIGEST_BYTES]


def content_digest(tick: Tick) -> bytes:
    """8 bytes over the whole content, then a 1-byte fingerprint per content field."""
    content = tick.content()
    whole = blake2b(orjson.dumps(content), digest_size=CONTENT_DIGEST_BYTES).digest()
    fingerprints = bytes(
        blake2b(orjson.dumps(value), digest_size=1, key=name).digest()[0]
        for name, value in zip(_FIELD_KEYS, content, strict=True)
    )
    return whole + fingerprints


def differing_fields_by_digest(stored: bytes, new: bytes) -> list[str]:
    """The content fields whose fingerprints differ (a differing field whose 1-byte fingerprints
    collide, 1 in 256, goes unnamed; the conflict itself is told by the whole digest)."""
    return [
        name
        for i, name in enumerate(CONTENT_FIELDS)
        if stored[CONTENT_DIGEST_BYTES + i : CONTENT_DIGEST_BYTES + i + 1]
        != new[CONTENT_DIGEST_BYTES + i : CONTENT_DIGEST_BYTES + i + 1]
    ]
