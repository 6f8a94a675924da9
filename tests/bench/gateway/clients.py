"""A client process: `python -m tests.bench.gateway.clients --url U --plan P --out O`.

Opens every connection of its plan (a JSON list of {"path", "stalled"}), prints `ready` once each
has its response head, then reads until a `stop <t0_ms> <t1_ms>` line on stdin. It writes a JSON
summary to O (per client: status, events, error) and the latencies (ms, float32) of the healthy
clients' events published within [t0, t1] to O + ".lat". Clients run in processes of their own
so their CPU is not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from array import array
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench.gateway.sse_client import Healthy
from tests.bench.gateway.stalled import Stalled

CONNECT_CONCURRENCY = 50
CONNECT_TIMEOUT_S = 120.0


async def _main(url: str, plan: list[dict[str, object]], out: Path) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    clients: list[Healthy | Stalled] = [
        Stalled(str(p["path"])) if p["stalled"] else Healthy(str(p["path"])) for p in plan
    ]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(client: Healthy | Stalled) -> None:
        async with gate:
            task = asyncio.create_task(client.run(host, port))
            tasks.append(task)
            await client.headers_seen.wait()

    tasks: list[asyncio.Task[None]] = []
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await asyncio.gather(*(open_one(c) for c in clients))
    refused = [c for c in clients if c.status != 200]
    print(f"ready {len(clients) - len(refused)} {len(refused)}", flush=True)

    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    words = line.split()
    t0, t1 = (float(words[1]), float(words[2])) if len(words) == 3 else (0.0, float("inf"))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    latencies = array("f")
    summary = []
    for c in clients:
        row: dict[str, object] = {
            "stalled": isinstance(c, Stalled),
            "status": c.status,
            "port": c.port,
        }
        row["error"] = c.error
        if isinstance(c, Healthy):
            in_window = [
                lat for pub, lat in zip(c.pub_ms, c.lat_ms, strict=True) if t0 <= pub <= t1
            ]
            latencies.extend(in_window)
            row |= {"events": c.events, "in_window": len(in_window), "frames": c.frames}
        else:
            c.close()
        summary.append(row)
    out.write_text(json.dumps({"clients": summary}))
    with open(str(out) + ".lat", "wb") as f:
        latencies.tofile(f)
    print("done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.gateway.clients", description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    return asyncio.run(_main(args.url, plan, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
