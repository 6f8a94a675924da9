"""One stalled client: it connects, reads the response head, then never reads again.

Its receive buffer is set small before connecting (SO_RCVBUF), so the kernel's buffers fill
within a second and from then on the server holds whatever the client does not take.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from tests.bench.gateway.sse_client import read_status, request_bytes

RCVBUF = 4_096


@dataclass
class Stalled:
    path: str
    status: int = 0
    port: int = 0
    error: str | None = None
    sock: socket.socket | None = None
    headers_seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        self.sock = sock
        try:
            await loop.sock_connect(sock, (host, port))
            self.port = sock.getsockname()[1]
            await loop.sock_sendall(sock, request_bytes(host, port, self.path))
            head = b""
            while b"\r\n\r\n" not in head:
                data = await loop.sock_recv(sock, 1)  # byte by byte: take nothing beyond it
                if not data:
                    break
                head += data
            self.status = read_status(head)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.headers_seen.set()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
