"""Who connects how: each client's `/stream` path (which symbols it follows) and whether it
stalls, spread over the client processes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientPlan:
    path: str
    stalled: bool
    symbols: tuple[str, ...] | None  # None: follows every symbol


def plan_clients(
    count: int,
    symbols: list[str],
    per_client: int,
    *,
    stalled_share: float,
    all_share: float,
    stalled_follow_all: bool = False,
) -> list[ClientPlan]:
    """`count` clients; client i follows `per_client` consecutive symbols from i * per_client (so
    every symbol has the same number of followers); every 1/stalled_share-th client stalls
    (following every symbol with `stalled_follow_all`), and all_share of the others follow
    every symbol."""
    stall_every = round(1 / stalled_share) if stalled_share > 0 else 0
    n_all = round(count * all_share)
    all_every = max(1, count // n_all) if n_all else 0
    plans = []
    for i in range(count):
        stalled = bool(stall_every) and i % stall_every == stall_every - 1
        if stalled and stalled_follow_all:
            plans.append(ClientPlan("/stream", True, None))
            continue
        if not stalled and n_all > 0 and i % all_every == 0:
            n_all -= 1
            plans.append(ClientPlan("/stream", stalled, None))
            continue
        chosen = tuple(symbols[(i * per_client + k) % len(symbols)] for k in range(per_client))
        plans.append(ClientPlan("/stream?symbols=" + ",".join(chosen), stalled, chosen))
    return plans


def split(plans: list[ClientPlan], parts: int) -> list[list[ClientPlan]]:
    """Round-robin over `parts` processes (each gets its share of stalled and healthy)."""
    return [plans[k::parts] for k in range(parts) if plans[k::parts]]
