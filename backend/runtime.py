"""Process-level tuning shared by the API and the workers."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, routes, schemas, clients) out of the
    garbage collector's reach, so that its full passes walk only what requests create.

    Without it, every full collection under load walks the whole FastAPI app, a pause that
    grows with the app rather than with the traffic (figures in docs/scaling-out.md). Nothing
    frozen is ever freed, which is right for objects that live as long as the process.
    """
    gc.collect()
    gc.freeze()
