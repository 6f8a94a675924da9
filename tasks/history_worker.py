"""Entry point for `dramatiq tasks.history_worker` (`python -m tasks history`): the replays.

A service of its own, not more threads in `worker`: a replay at `max` is as much CPU as it can
get, and here it runs at `REPLAY_NICE`, so on a shared machine the OS gives live ingest and calc
the CPU first, and the service can be scaled (or stopped) without touching live processing.
"""

from __future__ import annotations

import os

from backend.logs import configure_logging
from backend.runtime import freeze_startup_heap
from backend.settings import get_worker_settings
from tasks.broker import build_broker, redis_client
from tasks.history_actors import register_history_actors
from tasks.ops_endpoints import add_ops_endpoints

settings = get_worker_settings()
configure_logging(settings, service="history")
if settings.replay_nice:
    os.nice(settings.replay_nice)
broker = build_broker(settings)
add_ops_endpoints(broker, settings, "history")
actors = register_history_actors(broker, settings, redis_client(settings))
freeze_startup_heap()
