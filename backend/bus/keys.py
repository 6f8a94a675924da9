"""Every Redis key Tickstream uses, in one place, under one namespace (`REDIS_NAMESPACE`)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.settings import BusSettings

CALC_ACTOR = "calc_ticks"  # calc-a + calc-b in one step (default), or calc-a alone (CALC_SPLIT)
CALC_B_ACTOR = "calc_view"  # calc-b when CALC_SPLIT: builds W from the stored state
CALC_B_QUEUE = "calc.a.done"
OUTBOX_GROUP = "persist"
ALERTS_EVALUATE_ACTOR = "alerts_evaluate"
ALERTS_EVALUATE_QUEUE = "alerts.evaluate"
ALERTS_DELIVER_ACTOR = "alerts_deliver"
ALERTS_DELIVER_QUEUE = "alerts.deliver"
# Retries and jobs put back for a full host: a queue of their own, so a backlog of them (a dead
# receiver's) never stands in front of a first attempt to a healthy one.
ALERTS_DELIVER_RETRY_ACTOR = "alerts_deliver_retry"
ALERTS_DELIVER_RETRY_QUEUE = "alerts.deliver.retry"
ALERT_HISTORY_GROUP = "persist"
REPLAY_ACTOR = "replay_run"
REPLAY_QUEUE = "replays"
# Rebuilding a symbol's calc state from PostgreSQL + the outbox (tasks/rebuild.py); runs in the
# worker service, which has PostgreSQL.
REBUILD_ACTOR = "rebuild_symbols"
REBUILD_QUEUE = "rebuilds"


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str
    queue_name: str

    @classmethod
    def from_settings(cls, settings: BusSettings) -> Keys:
        return cls(namespace=settings.redis_namespace, queue_name=settings.queue_name)

    @property
    def dramatiq_namespace(self) -> str:
        """Dramatiq's own keys live under this prefix (`RedisBroker(namespace=...)`)."""
        return f"{self.namespace}:dq"

    def queue_list(self, queue: str | None = None) -> str:
        return f"{self.dramatiq_namespace}:{queue or self.queue_name}"

    def queue_messages(self, queue: str | None = None) -> str:
        return f"{self.queue_list(queue)}.msgs"

    def dead_letters(self, queue: str | None = None) -> str:
        return f"{self.queue_list(queue)}.XQ"

    def dead_letter_messages(self, queue: str | None = None) -> str:
        return f"{self.dead_letters(queue)}.msgs"

    @property
    def dead_letter_reasons(self) -> str:
        """Hash message_id -> JSON {error, traceback, failed_at_ms}: why each was dead-lettered."""
        return f"{self.namespace}:dlq:reasons"

    def worker_acks(self, worker_id: str, queue: str | None = None) -> str:
        """Dramatiq's set of the messages worker `worker_id` fetched from `queue`, not yet acked:
        given back to the queue when the worker's heartbeat stops."""
        return f"{self.dramatiq_namespace}:__acks__.{worker_id}.{queue or self.queue_name}"

    @property
    def calc_solo(self) -> str:
        """Set of calc messages (Redis message ids) that failed in a coalesced step: each next
        runs on its own (backend/bus/calc_claims.py)."""
        return f"{self.namespace}:calc:solo"

    @property
    def heartbeats(self) -> str:
        """Dramatiq's sorted set of worker heartbeats (score: last beat, epoch ms)."""
        return f"{self.dramatiq_namespace}:__heartbeats__"

    @property
    def dedup_prefix(self) -> str:
        """Pre-upgrade de-dup keys: `<prefix><event_id>` strings holding the content JSON, read
        only while `dedup_legacy_marker` exists (backend/bus/dedup.py)."""
        return f"{self.namespace}:dedup:"

    def dedup_hashes(self, layout_tag: str) -> str:
        """Prefix of the compact de-dup hashes: `<prefix><generation>:<shard>`, field = event_id
        digest, value = content digest (backend/core/dedup.py)."""
        return f"{self.namespace}:dd:{layout_tag}:"

    @property
    def dedup_legacy_marker(self) -> str:
        """Exists while pre-upgrade `dedup_prefix` keys may still matter (set at API start-up
        when one is found, expiring DEDUP_TTL later)."""
        return f"{self.namespace}:dd:legacy"

    @property
    def dedup_format(self) -> str:
        """The compact layout in use (`DedupLayout.tag`); set at API start-up."""
        return f"{self.namespace}:dd:format"

    @property
    def outbox(self) -> str:
        """Stream of accepted batches waiting for Postgres; entries deleted after commit."""
        return f"{self.namespace}:outbox"

    def state(self, symbol: str) -> str:
        """calc's window state of `symbol` (JSON of `WindowState`).

        v3: the window is also indexed by price (`window_prices()`); older states (v2 had no
        price index, v1 kept the ticks inline) are ignored, not misread.

        Bumping the version (or losing the key) does NOT reset the symbol's view to empty: when
        calc finds no state for a symbol the view-order hash knows, it fences the symbol and
        enqueues a `rebuild_symbols` message (tasks/rebuild.py), which rebuilds the state from
        PostgreSQL + the outbox, exactly (docs/services/rebuild.md).
        """
        return f"{self.namespace}:calc:v3:{symbol}"

    def window(self, symbol: str) -> str:
        """Sorted set of the ticks in the symbol's 60 s window (score: ts in µs)."""
        return f"{self.namespace}:win3:{symbol}"

    def window_prices(self, symbol: str) -> str:
        """The same members as `window()`, scored by price: the window's high and low."""
        return f"{self.namespace}:winp3:{symbol}"

    def view(self, symbol: str) -> str:
        return f"{self.namespace}:view:{symbol}"

    def rebuild_fence(self, symbol: str) -> str:
        """Hash that exists while `symbol`'s state is being rebuilt: calc merges nothing then and
        buffers each tick here instead (event_id -> encoded tick; field `\\x00since`: when the
        fence was set). The rebuild's swap merges the buffer and deletes the fence."""
        return f"{self.namespace}:rebuild:fence:{symbol}"

    def rebuild_seal(self, symbol: str) -> str:
        """Short-lived marker (SET PX) a rebuild's swap sets when calc keeps beating it to the
        fence: calc waits while it exists instead of buffering, so the swap gets through. A
        liveness device only (it changes nothing calc writes); it expires by itself."""
        return f"{self.namespace}:rebuild:seal:{symbol}"

    @property
    def rebuild_status(self) -> str:
        """Hash symbol -> JSON `RebuildStatus` of its last rebuild (GET /admin/rebuild)."""
        return f"{self.namespace}:rebuild:status"

    @property
    def view_order(self) -> str:
        """Hash symbol -> the stored view's event order (`lua.view_order`): W never goes back."""
        return f"{self.namespace}:view-order"

    @property
    def symbols(self) -> str:
        """Hash symbol -> last view update (µs): the set of known symbols."""
        return f"{self.namespace}:symbols"

    def calc_done(self, message_id: str) -> str:
        """Hash of the symbols of calc batch `message_id` already applied (field per symbol)."""
        return f"{self.namespace}:calc-done2:{message_id}"

    @property
    def stats(self) -> str:
        """Hash of cross-process counters (workers write, the API's /metrics reads)."""
        return f"{self.namespace}:stats"

    def stats_slot(self, slot: int) -> str:
        """Short-lived marker (SET NX EX): the API replica that sets it writes sample `slot`."""
        return f"{self.namespace}:stats:slot:{slot}"

    @property
    def stats_samples(self) -> str:
        """Stream of pipeline samples (`s` = Sample JSON), capped at STATS_RETENTION."""
        return f"{self.namespace}:stats:samples"

    @property
    def feeder_config(self) -> str:
        """JSON of the current FeederConfig (PUT /feeder/config); absent → Settings defaults."""
        return f"{self.namespace}:feeder:config"

    @property
    def feeder_status(self) -> str:
        """Hash feeder_id -> JSON of its last FeederStatus plus `received_at`."""
        return f"{self.namespace}:feeder:status"

    @property
    def feeder_status_prune(self) -> str:
        """Short-lived marker (SET NX EX): at most one prune of `feeder_status` per minute."""
        return f"{self.namespace}:feeder:status-prune"

    # --- alerts -------------------------------------------------------------------------------
    @property
    def alert_rules(self) -> str:
        """Hash rule_id -> the rule's mirror JSON (PostgreSQL holds the truth, workers read it)."""
        return f"{self.namespace}:alerts:rules"

    @property
    def alert_rules_version(self) -> str:
        """Counter bumped with every rule change: a worker's cache reloads when it moves."""
        return f"{self.namespace}:alerts:rules:version"

    def alert_observations(self, symbol: str) -> str:
        """Stream of what calc committed for `symbol` (an entry per commit, field `o`: JSON array
        of Observations), in commit order, waiting for `alerts.evaluate`; trimmed up to the
        evaluated cursor."""
        return f"{self.namespace}:alerts:obs:{symbol}"

    def alert_memory(self, symbol: str) -> str:
        """JSON of the symbol's evaluation memory: the stream cursor, each field's previous
        value, each rule's state. Written in the same MULTI as the firings it led to."""
        return f"{self.namespace}:alerts:mem:{symbol}"

    @property
    def alert_history(self) -> str:
        """Stream of firing and delivery records waiting for PostgreSQL (like the tick outbox)."""
        return f"{self.namespace}:alerts:history"

    def alert_host_slots(self, host: str) -> str:
        """Sorted set of in-flight deliveries to `host` (score: lease expiry, ms)."""
        return f"{self.namespace}:alerts:host:{host}"

    def alert_parked(self, host: str) -> str:
        """List of delivery jobs parked while `host` had no free slot, oldest first (each entry:
        its reserved slot token, its message id and the ready `alerts.deliver` message)."""
        return f"{self.namespace}:alerts:parked:{host}"

    @property
    def alert_parked_hosts(self) -> str:
        """Sorted set of hosts with parked jobs (score: when the first of them was parked, ms),
        what the stranded-job sweep walks."""
        return f"{self.namespace}:alerts:parked-hosts"

    @property
    def process_restarts(self) -> str:
        """Hash of the launcher's restarts, fields `<process>.count`, `<process>.last_exit_code`
        and `<process>.last_restart_ms` (one HGETALL reads every process)."""
        return f"{self.namespace}:process-restarts"

    # --- replays ------------------------------------------------------------------------------
    @property
    def replays(self) -> str:
        """Sorted set of replay ids (score: created, epoch ms): `GET /replays`."""
        return f"{self.namespace}:replays"

    def replay_record(self, replay_id: str) -> str:
        """JSON of the replay's `ReplayRecord`: request, progress, wanted state."""
        return f"{self.namespace}:replays:{replay_id}"

    def for_replay(self, replay_id: str) -> Keys:
        """The namespace a replay's calc and alert evaluation write into: the same key names
        as live under a prefix of its own, so the same code runs unchanged and never touches
        a live key."""
        return Keys(namespace=f"{self.namespace}:replay:{replay_id}", queue_name=self.queue_name)

    def candles_1m(self, symbol: str) -> str:
        """Hash bucket µs -> 1 m candle JSON (a replay's own candles; live ones are in SQL)."""
        return f"{self.namespace}:candles1m:{symbol}"

    @property
    def sandbox_firings(self) -> str:
        """List of the firings a sandboxed evaluation would have sent, in evaluation order."""
        return f"{self.namespace}:alerts:sandbox"

    @property
    def private_ring(self) -> str:
        """A replay's own realtime ring: its `symbol.updated` events must never reach the
        live one, where the gateway would take them for live views."""
        return f"{self.namespace}:ring"

    def replay_namespace_keys(self, symbols: list[str]) -> list[str]:
        """Every key a replay namespace holds (besides calc's done-markers, which expire on
        their own): what the replay's TTL is set on."""
        per_symbol = [
            key
            for symbol in symbols
            for key in (
                self.state(symbol), self.window(symbol), self.window_prices(symbol),
                self.view(symbol), self.alert_observations(symbol), self.alert_memory(symbol),
                self.candles_1m(symbol),
            )
        ]  # fmt: skip
        shared = [self.symbols, self.view_order, self.stats, self.sandbox_firings]
        return [*per_symbol, *shared, self.private_ring]
