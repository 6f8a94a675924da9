"""Who may read a process's /metrics: the one rule the API and every ops endpoint apply.

Metrics name symbols, rates and backlogs: not secrets, yet not for the whole internet. A
Prometheus server normally scrapes from a private network (the same host, a cluster's pod
network, compose's bridge), so a client address inside `METRICS_ALLOW_CIDRS` reads freely;
anyone else must present the API key, as `x-api-key` (what the read API accepts) or as
`Authorization: Bearer` (what Prometheus's `authorization: credentials_file` sends).

Pure: the caller passes the client address and headers it saw, and the decision says what to
answer, so the rule is tested without a server.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    status: int = 200  # 401 (key missing/wrong) or 403 (no key configured, address not allowed)
    reason: str = ""


ALLOWED = AccessDecision(True)


@lru_cache(maxsize=32)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The allow list as networks; raises ValueError naming a bad entry (checked at startup)."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"METRICS_ALLOW_CIDRS: {cidr!r} is not a network ({exc})") from None
    return tuple(networks)


def address_allowed(host: str | None, networks: Iterable[Network]) -> bool:
    """True when `host` is an IP address inside one of `networks` (names never match)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 from a dual-stack socket
    return any(address.version == net.version and address in net for net in networks)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `x-api-key`, else an `Authorization: Bearer` token.

    `headers` must be case-insensitive or lower-cased (Starlette's Headers are).
    """
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def decide_metrics_access(
    *,
    client_host: str | None,
    presented: str | None,
    api_key: str | None,
    allow_cidrs: Iterable[str],
) -> AccessDecision:
    """Allowed from an allow-listed address, or anywhere with the right API key.

    Without a configured key a client outside the list has no way in (403); with one, a
    missing or wrong key is a 401 so the client knows a key would help.
    """
    if address_allowed(client_host, parse_networks(tuple(allow_cidrs))):
        return ALLOWED
    if api_key is None:
        return AccessDecision(
            False, 403, "client address not in METRICS_ALLOW_CIDRS and API_KEY is not set"
        )
    if presented is not None and secrets.compare_digest(presented.encode(), api_key.encode()):
        return ALLOWED
    return AccessDecision(
        False, 401, "client address not in METRICS_ALLOW_CIDRS: send the API key (x-api-key)"
    )
