"""The gateway's Prometheus metrics: its clients, what it read and delivered, what slow clients
lost (a registry per app, so several gateways can live in one test process)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

if TYPE_CHECKING:
    from backend.gateway.client import Client

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.clients = Gauge(
            "tickstream_gateway_clients", "Connected clients", ["transport"], registry=r
        )
        self.connections = Counter(
            "tickstream_gateway_connections",
            "Connections accepted, by how they started (snapshot, resume, reset)",
            ["transport", "start"],
            registry=r,
        )
        self.refused = Counter(
            "tickstream_gateway_refused",
            "Connections refused (auth, limit, origin, not_ready)",
            ["reason"],
            registry=r,
        )
        self.ring_events = Counter(
            "tickstream_gateway_ring_events", "Events read from the realtime ring", registry=r
        )
        self.delivered = Counter(
            "tickstream_gateway_delivered_events", "Events written to clients", registry=r
        )
        self.coalesced = Counter(
            "tickstream_gateway_coalesced_events",
            "Queued views replaced by a newer view of their symbol (slow clients)",
            registry=r,
        )
        self.dropped = Counter(
            "tickstream_gateway_dropped_events",
            "Events dropped from full client queues (each reported as `missed`)",
            registry=r,
        )
        self.resyncs = Counter(
            "tickstream_gateway_ring_resyncs",
            "Times the gateway lost its place in the ring and reset its clients",
            registry=r,
        )
        self.delivery_latency = Histogram(
            "tickstream_gateway_delivery_latency_seconds",
            "From an event's append to the ring to its write to a client (newest of each write)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ring_connected = Gauge(
            "tickstream_gateway_ring_connected", "1 while the ring reader is connected", registry=r
        )

    def record_write(self, client: Client, items: Sequence[Any]) -> None:
        """Count one write to `client`, and its newest event's age (a ring id's ms part is when
        the event was appended, on the Redis clock of this machine or its neighbour)."""
        if not items:
            return
        self.delivered.inc(len(items))
        coalesced = client.queue.coalesced - client.coalesced_reported
        if coalesced:
            self.coalesced.inc(coalesced)
            client.coalesced_reported = client.queue.coalesced
        newest = items[-1].id
        if newest is not None:
            self.delivery_latency.observe(max(0.0, time.time() - newest[0] / 1000))
