"""The launcher's restart counter in Redis: written by the launcher, read by /stats and /metrics.

One hash for every process (`Keys.process_restarts`), so a read is one HGETALL. The launcher is
the only writer; a restart adds one to the count and overwrites the last exit in one MULTI, so a
reader never sees a count without its exit.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus.keys import Keys
from backend.core.processes import ProcessRestarts

COUNT = "count"
LAST_EXIT_CODE = "last_exit_code"
LAST_RESTART_MS = "last_restart_ms"


def parse_restarts(raw: Mapping[bytes, bytes]) -> dict[str, ProcessRestarts]:
    """process -> its restarts, sorted by name, from the hash's fields (pure). Fields this
    version does not know are skipped, so a newer writer never breaks an older reader."""
    fields: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        process, _, name = key.decode().rpartition(".")
        if process and name in (COUNT, LAST_EXIT_CODE, LAST_RESTART_MS):
            fields.setdefault(process, {})[name] = int(value)
    return {
        process: ProcessRestarts(count=values.get(COUNT, 0), **_last(values))
        for process, values in sorted(fields.items())
    }


def _last(values: dict[str, int]) -> dict[str, int | None]:
    return {name: values.get(name) for name in (LAST_EXIT_CODE, LAST_RESTART_MS)}


class ProcessRestartsStore:
    """The launcher's side (synchronous: the supervision loop is)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.process_restarts

    def record(self, process: str, *, exit_code: int | None, now_ms: int) -> int:
        """Count one restart of `process`; returns its new count. Raises RedisError."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._key, f"{process}.{COUNT}", 1)
            if exit_code is None:
                pipe.hdel(self._key, f"{process}.{LAST_EXIT_CODE}")
            else:
                pipe.hset(self._key, f"{process}.{LAST_EXIT_CODE}", exit_code)
            pipe.hset(self._key, f"{process}.{LAST_RESTART_MS}", now_ms)
            count, *_ = pipe.execute()
        return int(count)

    def all(self) -> dict[str, ProcessRestarts]:
        return parse_restarts(self._redis.hgetall(self._key))


class ProcessRestartsReader:
    """The API's side: every process's restarts, for /stats and /metrics."""

    def __init__(self, redis: AsyncRedis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.process_restarts

    async def all(self) -> dict[str, ProcessRestarts]:
        """Raises RedisError."""
        return parse_restarts(await self._redis.hgetall(self._key))
