"""freeze_startup_heap: what is alive at start-up leaves the collector's generations."""

from __future__ import annotations

import gc

from backend.runtime import freeze_startup_heap


def test_objects_alive_at_startup_are_frozen_and_later_ones_are_not() -> None:
    before = [object() for _ in range(1_000)]
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= len(before)
        after = [[] for _ in range(1_000)]  # created after the freeze: collectable as usual
        assert gc.get_freeze_count() == frozen
        assert any(gc.is_tracked(x) for x in after)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
