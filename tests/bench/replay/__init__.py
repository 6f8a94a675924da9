"""Replay benchmark (`make bench-replay`): seed stored ticks, replay them at `max` (rate, RSS of
the `history` service over the run, Redis kept by the replay), then live latency with and
without a replay running. See `cli` for the figures and how they are measured."""
