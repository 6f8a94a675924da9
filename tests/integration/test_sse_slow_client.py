"""A stalled SSE client against a real API process: it loses its oldest events (counted, and it
is told), while a fast client on the same process gets every event in order.

Why the assertions cannot be flaky:
- The fast client can never overflow its 1000-event queue: events are published in batches of
  BATCH (< 1000) and the next batch is only published once the fast client has received every
  event of the previous one, so at most BATCH of its events are ever in flight. If the stalled
  client stalled the broadcaster, the fast client would stop receiving and the wait would time
  out. So every `tickstream_sse_dropped_events` increment is the stalled client's.
- Publishing goes on until /metrics shows MIN_DROPS drops (adaptive, instead of guessing how
  much the kernel and uvicorn buffer for the stalled socket), plus one final batch.
- Accounting is then exact, independent of how many events sat in socket buffers: every event
  offered to the stalled subscriber is either dequeued (and so delivered: the socket is read to
  the end) or dropped, and the stream reports drops right before the first event after the gap
  (a drop always removes the oldest queued event, and `Subscriber.next` reads the drop count and
  that event in one step), so each event's number equals delivered + reported-missed before it.
  The last event published is also the last offered, so the report before it includes every
  drop. Hence `received + sum(missed) == published` exactly, and `sum(missed)` equals the metric.
- After the last `missed` report nothing more was dropped, and the queue was full (1000 events)
  at the last drop, so what follows that report is at least 1000 contiguous events that end with
  the last one published: the newest.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from redis import Redis

from backend.api.broadcaster import Subscriber
from backend.bus import events
from backend.bus.ingest import Outcome, Status
from backend.core.ticks import Tick
from backend.settings import Settings
from tests.support.processes import Processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

BATCH = 500  # < the queue bound, see the module docstring
MIN_DROPS = 5_000  # keep publishing until the stalled client has lost at least this many
MAX_EVENTS = 150_000  # safety cap: fail rather than publish forever
SYMBOLS = ("BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL")
BASE_US = 1_795_271_400_000_000
WAIT_S = 30.0


def tick_event(seq: int) -> bytes:
    """The real `tick.received` event for one accepted tick; seq is carried in event_id."""
    tick = Tick(
        f"sse-{seq:07d}",
        SYMBOLS[seq % len(SYMBOLS)],
        BASE_US + seq,
        100.0 + seq % 97,
        1.0,
        "binance",
        seq,
        0,
    )
    (raw,) = events.ticks_received([tick], [Outcome(Status.ACCEPTED)])
    return raw


def seq_of(event: dict[str, object]) -> int:
    return int(str(event["event_id"]).removeprefix("sse-"))


def parse_frame(frame: bytes) -> tuple[str, bytes] | None:
    """(event type, data) of one SSE frame; None for comments (`: connected`, keepalives)."""
    kind, data = "message", None
    for line in frame.split(b"\n"):
        if line.startswith(b"event: "):
            kind = line[len(b"event: ") :].decode()
        elif line.startswith(b"data: "):
            data = line[len(b"data: ") :]
    return None if data is None else (kind, data)


@dataclass
class FastClient:
    """Reads GET /stream continuously in a thread (httpx), recording every event's seq."""

    url: str
    seqs: list[int] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    stop_at: int | None = None
    error: BaseException | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    progress: threading.Condition = field(default_factory=threading.Condition)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="sse-fast", daemon=True)
        self.thread.start()
        if not self.connected.wait(WAIT_S):
            raise AssertionError(f"fast SSE client did not connect: {self.error!r}")

    def _run(self) -> None:
        try:
            timeout = httpx.Timeout(WAIT_S, connect=5.0)
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self.url, headers={"Accept": "text/event-stream"}) as r,
            ):
                r.raise_for_status()
                frame: list[str] = []
                for line in r.iter_lines():
                    if line:
                        frame.append(line)
                        continue
                    if frame == [": connected"]:
                        self.connected.set()
                    parsed = parse_frame("\n".join(frame).encode())
                    frame = []
                    if parsed is None:
                        continue
                    kind, data = parsed
                    with self.progress:
                        self.kinds.add(kind)
                        if kind == "tick.received":
                            self.seqs.append(seq_of(orjson.loads(data)))
                        self.progress.notify_all()
                    if self.stop_at is not None and self.seqs and self.seqs[-1] >= self.stop_at:
                        return
        except BaseException as exc:  # reported by wait_until / the test
            self.error = exc
        finally:
            self.connected.set()
            with self.progress:
                self.progress.notify_all()

    def wait_until(self, count: int) -> None:
        """Block until `count` events arrived (a wait, not a timed assertion)."""
        with self.progress:
            self.progress.wait_for(
                lambda: len(self.seqs) >= count or self.error is not None, WAIT_S
            )
        if len(self.seqs) < count:
            raise AssertionError(
                f"fast client has {len(self.seqs)}/{count} events (error: {self.error!r})"
            )

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "fast SSE client did not finish"


class StalledClient:
    """A raw-socket SSE client with a tiny receive buffer that reads the headers, then nothing."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        self.sock.settimeout(WAIT_S)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = self.sock.recv(4096)
            assert data, "API closed the stalled client's connection"
            raw += data
        head, _, self._raw = raw.partition(b"\r\n\r\n")
        status, *header_lines = head.decode("latin-1").split("\r\n")
        assert status.startswith("HTTP/1.1 200"), status
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        assert headers["content-type"].startswith("text/event-stream")
        assert headers.get("transfer-encoding") == "chunked", headers
        self._body = b""

    def _dechunk(self) -> None:
        """Move every complete HTTP chunk from the raw buffer to the body buffer."""
        raw, pos, parts = self._raw, 0, []
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";")[0], 16)
            end = eol + 2 + size
            if len(raw) < end + 2:
                break
            assert size > 0, "API ended the stream"
            parts.append(raw[eol + 2 : end])
            pos = end + 2
        self._raw = raw[pos:]
        self._body += b"".join(parts)

    def frames(self) -> Iterator[bytes]:
        """SSE frames from now on: starts reading the socket (buffered data first)."""
        deadline = time.monotonic() + WAIT_S  # keepalives would keep recv() from timing out
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("stalled client: the expected events never arrived")
            self._dechunk()
            *complete, self._body = self._body.split(b"\n\n")
            yield from complete
            data = self.sock.recv(65536)
            assert data, "API closed the stalled client's connection"
            self._raw += data

    def close(self) -> None:
        self.sock.close()


def dropped_metric(client: httpx.Client) -> float:
    r = client.get("/metrics")
    r.raise_for_status()
    for line in r.text.splitlines():
        if line.startswith("tickstream_sse_dropped_events_total "):
            return float(line.split()[1])
    raise AssertionError("tickstream_sse_dropped_events_total missing from /metrics")


def test_a_stalled_sse_client_loses_its_oldest_events_and_stalls_no_one(
    procs: Processes, settings: Settings
) -> None:
    # A channel of this test's own, so no other publisher on a shared Redis can add events.
    channel = f"{settings.redis_namespace}:{settings.pubsub_channel}"
    settings = settings.model_copy(update={"pubsub_channel": channel})
    procs.start_api({"PUBSUB_CHANNEL": settings.pubsub_channel})
    redis = Redis.from_url(settings.effective_redis_url)
    api = httpx.Client(base_url=procs.api_url, timeout=10)
    fast = FastClient(procs.api_url + "/stream")
    stalled: StalledClient | None = None
    try:
        # The broadcaster's one subscription is up before anything is published.
        wait_for(
            lambda: dict(redis.pubsub_numsub(channel)).get(channel.encode()) == 1,
            WAIT_S,
            what="the API's pub/sub subscription",
        )
        fast.start()
        stalled = StalledClient(procs.api_port)  # headers received: it is subscribed
        assert dropped_metric(api) == 0

        started = time.monotonic()
        published = 0
        final = False
        while True:
            assert published < MAX_EVENTS, "the stalled client never overflowed"
            if final:
                fast.stop_at = published + BATCH - 1
            with redis.pipeline(transaction=False) as pipe:
                for seq in range(published, published + BATCH):
                    pipe.publish(channel, tick_event(seq))
                receivers = pipe.execute()
            assert receivers == [1] * BATCH  # the one API process got each one
            published += BATCH
            fast.wait_until(published)  # the stalled client holds no one up
            if final:
                break
            assert api.get("/health/liveness").status_code == 200  # responsive throughout
            final = dropped_metric(api) >= MIN_DROPS  # overflowed: one more batch, then stop
        publish_s = time.monotonic() - started
        fast.join()

        # The fast client got everything, in order, nothing reported missing.
        assert fast.error is None, repr(fast.error)
        assert fast.seqs == list(range(published))
        assert fast.kinds == {"tick.received"}
        # The API answers while the stalled client still reads nothing.
        assert api.get("/health/liveness").status_code == 200
        dropped = dropped_metric(api)

        # Now the stalled client reads everything that was kept for it.
        received: list[int] = []
        missed: list[int] = []  # the `dropped` of each `missed` report, in stream order
        after_last_report: list[int] = []
        before_first_report = 0
        for frame in stalled.frames():
            parsed = parse_frame(frame)
            if parsed is None:
                continue
            kind, data = parsed
            if kind == "missed":
                if not missed:
                    before_first_report = len(received)
                missed.append(orjson.loads(data)["dropped"])
                after_last_report = []
                continue
            assert kind == "tick.received", frame
            seq = seq_of(orjson.loads(data))
            # Every gap is reported exactly where it is: this event's number is the count of
            # events before it, delivered or reported missed (no silent gap, no early report).
            assert seq == len(received) + sum(missed), (seq, len(received), missed)
            assert not received or seq > received[-1]  # in order
            received.append(seq)
            after_last_report.append(seq)
            if seq == published - 1:
                break

        assert missed and all(n > 0 for n in missed)
        assert sum(missed) == dropped > 0
        assert len(received) + sum(missed) == published
        maxsize = Subscriber(None).queue.maxsize
        assert len(after_last_report) >= maxsize
        assert after_last_report == list(range(published - len(after_last_report), published))
        assert dropped_metric(api) == dropped  # nothing else dropped since
        print(
            f"\npublished={published} in {publish_s:.1f}s; stalled client: "
            f"received={len(received)} ({before_first_report} before the first report), "
            f"missed reports={missed}, metric={dropped:.0f}"
        )
    finally:
        if stalled is not None:
            stalled.close()
        fast.stop_at = -1
        api.close()
        redis.close()
