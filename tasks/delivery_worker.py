"""Entry point for `dramatiq tasks.delivery_worker` (Procfile `alerts`): webhook delivery only.

A process of its own, so receivers that are slow, dead or hostile can only ever take delivery
threads: calc and evaluation (`tasks.worker`) never consume `alerts.deliver`, and this process
consumes nothing else.
"""

from __future__ import annotations

from backend.bus.dead_letters import DeadLetterRecorder
from backend.bus.keys import Keys
from backend.logs import configure_logging
from backend.runtime import freeze_startup_heap
from backend.settings import get_worker_settings
from tasks.alerts_deliver import register_delivery_actor
from tasks.broker import build_broker, redis_client
from tasks.dead_letter_middleware import DeadLetterReasons
from tasks.ops_endpoints import add_ops_endpoints

settings = get_worker_settings()
configure_logging(settings, service="alerts")
broker = build_broker(settings)  # CurrentMessage, TimeLimit, ... as for every worker
add_ops_endpoints(broker, settings, "alerts")  # /metrics, /health/* (a fork)
keys = Keys.from_settings(settings)
broker.add_middleware(DeadLetterReasons(DeadLetterRecorder(redis_client(settings), keys)))
actors = register_delivery_actor(broker, settings, redis_client(settings))
freeze_startup_heap()
