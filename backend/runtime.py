"""Process-level tuning shared by the API and the workers."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, routes, schemas, clients) out of the
    garbage collector's reach, so that its full passes walk only what requests create.

    Measured in the API at 10,000 ticks/s: full collections took ~100 ms each (the whole
    FastAPI app, ~117,000 objects, walked every time) and 2–8 ms after the freeze. Nothing
    frozen is ever freed, which is right for objects that live as long as the process.
    """
    gc.collect()
    gc.freeze()
