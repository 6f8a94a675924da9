"""The chaos suite (`make chaos`): the real system under a seeded stream while processes die.

Each scenario runs a private Tickstream (`cluster`), drives it with clients that retry like real
feeders (`tests.support.load`), injects one kind of failure (`scenarios`), then checks the promise
(`tests.support.verify`):
every acknowledged event_id is in PostgreSQL exactly once, every view equals the one computed from
the acknowledged set, and no process died that the scenario did not kill.
"""
