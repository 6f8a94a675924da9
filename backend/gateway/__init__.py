"""The realtime gateway: its own process for long-lived clients (SSE and WebSocket).

Each gateway process reads the realtime ring (`backend.bus.realtime`) once and fans it out to its
clients; a client starts from a snapshot or resumes after its last event id. See
docs/services/gateway.md for the protocol.
"""
