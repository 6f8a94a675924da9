"""One webhook attempt over HTTP: the edge between a DeliveryJob and a receiver we do not trust.

Every way a receiver can hold a delivery thread is bounded:
- each socket operation (connect, write, read, pool) times out after ALERT_WEBHOOK_TIMEOUT;
- the whole attempt has a deadline of the same length, enforced by a watchdog that shuts the
  socket down, because per-read timeouts alone let a server that trickles a byte a second (in
  its status line, headers or body) keep a thread for hours;
- redirects are never followed (a 3xx is a final failure: it could point anywhere, including
  past the deny list);
- the DNS lookup is abandoned at the deadline too (getaddrinfo cannot be given a timeout);
- at most MAX_RESPONSE_BYTES of the answer are read (raw, never decompressed), so an endless or
  compressed-bomb body costs nothing.
The host is resolved here, every resolved address is checked against ALERT_WEBHOOK_DENY, and
the connection goes to the address that was checked (the `Host` header and TLS SNI keep the
name), so a name that re-resolves into a denied block between check and connect (DNS
rebinding) cannot reach it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from backend.core.alerts.firing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from backend.core.alerts.records import DeliveryJob
from backend.core.alerts.retry import AttemptResult, result_for_status
from backend.core.alerts.rules import denied_reason

MAX_RESPONSE_BYTES = 64 * 1024
RESOLVER_THREADS = 4
USER_AGENT = "Tickstream-Webhook/1"
DenyList = tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]
Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in resolver order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Watchdog:
    """Shuts down the attempt's sockets at the deadline: a blocked read or write then returns at
    once and httpx raises, whatever the server does."""

    def __init__(self, seconds: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` extension: remember each socket as soon as it is connected."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with self._lock:
                    self._sockets.append(sock)
                    late = self.fired
                if late:
                    self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class WebhookSender:
    """Sends DeliveryJobs; thread-safe (one httpx client, no keep-alive: each attempt gets a
    fresh connection to the address it just checked, and the watchdog sees its socket)."""

    def __init__(
        self,
        timeout_s: float,
        deny: DenyList,
        resolve: Resolver = resolve_host,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.timeout_s = timeout_s
        self.deny = deny
        self.resolve = resolve
        self.clock = clock
        # getaddrinfo has no timeout of its own: it runs here, and the attempt stops waiting for
        # it at its deadline (a stuck lookup then holds a resolver thread, never a delivery one).
        self._resolver = concurrent.futures.ThreadPoolExecutor(
            max_workers=RESOLVER_THREADS, thread_name_prefix="webhook-dns"
        )
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            trust_env=False,  # no proxies from the environment: we connect where we checked
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._client.close()
        self._resolver.shutdown(wait=False, cancel_futures=True)

    def send(self, job: DeliveryJob) -> AttemptResult:
        """One attempt; never raises for anything the receiver or the network does."""
        started = time.monotonic()
        parts = urlsplit(job.url)
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return AttemptResult("fail", error="bad port in URL")
        if parts.scheme not in ("http", "https") or not host:
            return AttemptResult("fail", error="URL must be http(s) with a host")
        lookup = self._resolver.submit(self.resolve, host, port)
        try:
            addresses = lookup.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            return AttemptResult("retry", error=f"DNS: no answer for {host} in {self.timeout_s}s")
        except (OSError, UnicodeError) as exc:
            return AttemptResult("retry", error=f"DNS: cannot resolve {host}: {exc}")
        if not addresses:
            return AttemptResult("retry", error=f"DNS: {host} has no address")
        reason = denied_reason(job.url, self.deny, addresses)
        if reason is not None:
            return AttemptResult("fail", error=f"refused: {reason}")
        url = httpx.URL(job.url)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: job.alert_id,
        }
        if job.signature is not None:
            headers[SIGNATURE_HEADER] = job.signature
        remaining = self.timeout_s - (time.monotonic() - started)
        with _Watchdog(remaining) as watchdog:
            extensions: dict[str, Any] = {"trace": watchdog.trace}
            if parts.scheme == "https":
                extensions["sni_hostname"] = host
            try:
                return self._post(url.copy_with(host=addresses[0]), job, headers, extensions)
            except httpx.TimeoutException as exc:
                return AttemptResult("retry", error=f"timeout: {type(exc).__name__}")
            except httpx.HTTPError as exc:
                if watchdog.fired:
                    return AttemptResult(
                        "retry", error=f"timeout: no complete answer within {self.timeout_s}s"
                    )
                return AttemptResult("retry", error=f"{type(exc).__name__}: {exc}"[:300])

    def _post(
        self, url: httpx.URL, job: DeliveryJob, headers: dict[str, str], extensions: dict[str, Any]
    ) -> AttemptResult:
        request = self._client.build_request(
            "POST", url, content=job.body.encode(), headers=headers, extensions=extensions
        )
        response = self._client.send(request, stream=True)
        try:
            result = result_for_status(
                response.status_code, response.headers.get("retry-after"), self.clock()
            )
            if result.outcome == "delivered":
                return result  # the answer is all we need; whatever body follows is dropped
            excerpt = bytearray()
            with contextlib.suppress(httpx.HTTPError):
                for chunk in response.iter_raw(chunk_size=16 * 1024):
                    excerpt += chunk
                    if len(excerpt) >= MAX_RESPONSE_BYTES:
                        break
            snippet = bytes(excerpt[:120]).decode("utf-8", errors="replace").strip()
            error = f"{result.error}: {snippet}" if snippet else result.error
            return AttemptResult(result.outcome, result.status, error, result.retry_after_s)
        finally:
            response.close()
