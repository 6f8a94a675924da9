"""Entry point for `dramatiq tasks.worker`: builds the broker, then registers the actors.

Dramatiq imports this module in every worker process; importing it is starting a worker.
"""

from __future__ import annotations

from backend.bus.dead_letters import DeadLetterRecorder
from backend.bus.keys import Keys
from backend.logs import configure_logging
from backend.runtime import freeze_startup_heap
from backend.settings import get_worker_settings
from tasks.actors import register_actors
from tasks.broker import build_broker, redis_client
from tasks.dead_letter_middleware import DeadLetterReasons
from tasks.flusher_middleware import AlertHistoryMiddleware, OutboxFlusherMiddleware
from tasks.ops_endpoints import add_ops_endpoints

settings = get_worker_settings()
configure_logging(settings, service="worker")
broker = build_broker(settings)
add_ops_endpoints(broker, settings, "worker")  # /metrics, /health/* (a fork)
broker.add_middleware(OutboxFlusherMiddleware(settings))
broker.add_middleware(AlertHistoryMiddleware(settings))
keys = Keys.from_settings(settings)
broker.add_middleware(DeadLetterReasons(DeadLetterRecorder(redis_client(settings), keys)))
actors = register_actors(broker, settings, redis_client(settings))
freeze_startup_heap()
