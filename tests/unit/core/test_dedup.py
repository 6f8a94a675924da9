from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.core.dedup import (
    DEFAULT_DEDUP_TTL,
    DEFAULT_GENERATIONS,
    DEFAULT_SHARDS,
    DESIGN_RATE,
    ID_DIGEST_BYTES,
    SMALL_HASH_ENTRIES,
    TARGET_FILL,
    VALUE_BYTES,
    DedupLayout,
    content_digest,
    differing_fields_by_digest,
    id_digest,
    shards_for,
)
from backend.core.ticks import CONTENT_FIELDS, Tick

TICK = Tick("e-1", "BTCUSDT", 1_795_000_000_000_000, 100.5, 2.0, "binance", 7, 0)
layouts = st.builds(
    DedupLayout,
    ttl_s=st.integers(1, 10 * 86_400),
    generations=st.integers(1, 64),
    shards=st.integers(1, 1_000_000),
)


@settings(max_examples=300, deadline=None)
@given(layouts, st.floats(1e9, 3e9), st.floats(0, 1e6))
def test_an_entry_is_live_in_the_lookup_for_at_least_ttl_and_its_key_outlives_it(
    layout: DedupLayout, written: float, later: float
) -> None:
    """Written at `written` into the then-current generation, an entry is looked up (its
    generation is among the live ones) and its key unexpired at every moment up to ttl later."""
    g = layout.generation(written)
    expires_at = math.floor(written) + layout.expire_s(g, written)
    now = written + later
    live = range(layout.generation(now) - layout.live_generations() + 1, layout.generation(now) + 1)
    if later <= layout.ttl_s:
        assert g in live
        assert expires_at > math.floor(now)
    assert expires_at - math.floor(written) <= layout.retained_s()


@given(layouts, st.floats(0, 3e9))
def test_the_generation_before_the_oldest_looked_up_has_expired(
    layout: DedupLayout, now: float
) -> None:
    """Looking further back would only cost time (sufficiency: the test above)."""
    oldest = layout.generation(now) - layout.live_generations() + 1
    assert oldest * layout.generation_s + layout.ttl_s <= math.floor(now)
    assert layout.live_generations() <= layout.generations + 1


@given(st.text(min_size=1, max_size=128), st.integers(1, 10**6))
def test_id_digest_is_stable_short_and_within_the_shards(event_id: str, shards: int) -> None:
    shard, field = id_digest(event_id, shards)
    assert (shard, field) == id_digest(event_id, shards)
    assert 0 <= shard < shards
    assert len(field) == ID_DIGEST_BYTES


def test_content_digest_tells_same_from_different_and_names_the_fields() -> None:
    digest = content_digest(TICK)
    assert len(digest) == VALUE_BYTES
    assert content_digest(TICK._replace(received_us=99)) == digest  # arrival time is not content
    other = TICK._replace(price=101.0, seq=8)
    assert content_digest(other) != digest
    assert differing_fields_by_digest(digest, content_digest(other)) == ["price", "seq"]
    assert differing_fields_by_digest(digest, digest) == []


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CONTENT_FIELDS), st.integers(1, 10**9))
def test_one_field_changed_changes_the_whole_digest(name: str, n: int) -> None:
    changes = {
        "symbol": {"symbol": f"S{n}"},
        "ts": {"ts_us": TICK.ts_us + n},
        "price": {"price": TICK.price + n},
        "volume": {"volume": TICK.volume + n},
        "source": {"source": f"src{n}"},
        "seq": {"seq": TICK.seq + n},  # type: ignore[operator]
    }
    other = content_digest(TICK._replace(**changes[name]))
    assert other[:8] != content_digest(TICK)[:8]
    named = differing_fields_by_digest(content_digest(TICK), other)
    assert set(named) <= {name}  # only the changed field (1 in 256 unnamed)


def test_the_defaults_keep_every_hash_small_at_the_design_rate_and_fit_2_gib() -> None:
    layout = DedupLayout(DEFAULT_DEDUP_TTL, DEFAULT_GENERATIONS, DEFAULT_SHARDS)
    assert shards_for(DESIGN_RATE, DEFAULT_DEDUP_TTL, DEFAULT_GENERATIONS) == DEFAULT_SHARDS
    assert layout.mean_fill(DESIGN_RATE) <= TARGET_FILL < SMALL_HASH_ENTRIES
    measured_bytes_per_entry = 32  # docs/benchmarks/dedup-memory.md, rounded up
    assert DESIGN_RATE * layout.retained_s() * measured_bytes_per_entry <= 2 * 2**30
