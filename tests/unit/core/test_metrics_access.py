"""The /metrics access rule: allow-listed address, or the API key."""

from __future__ import annotations

import pytest

from backend.core.metrics_access import (
    address_allowed,
    decide_metrics_access,
    parse_networks,
    presented_key,
)
from backend.settings.groups import DEFAULT_METRICS_ALLOW


def decide(host: str | None, presented: str | None = None, api_key: str | None = "k3y"):
    return decide_metrics_access(
        client_host=host, presented=presented, api_key=api_key, allow_cidrs=DEFAULT_METRICS_ALLOW
    )


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.31.0.1", "192.168.1.20", "::ffff:10.0.0.5"],
)
def test_private_and_loopback_addresses_read_without_a_key(host: str):
    assert decide(host, api_key=None).allowed
    assert decide(host, presented="wrong").allowed


@pytest.mark.parametrize("host", ["8.8.8.8", "172.32.0.1", "2001:db8::1", "testclient", "", None])
def test_other_clients_without_a_key_are_refused(host: str | None):
    keyed = decide(host)
    assert (keyed.allowed, keyed.status) == (False, 401)
    unkeyed = decide(host, api_key=None)
    assert (unkeyed.allowed, unkeyed.status) == (False, 403)
    assert "METRICS_ALLOW_CIDRS" in unkeyed.reason


def test_other_clients_with_the_key_read():
    assert decide("8.8.8.8", presented="k3y").allowed
    assert decide("8.8.8.8", presented="k3y-not").status == 401


def test_an_empty_allow_list_means_key_only():
    d = decide_metrics_access(client_host="127.0.0.1", presented=None, api_key="k", allow_cidrs=[])
    assert d.status == 401


def test_key_from_x_api_key_or_bearer():
    assert presented_key({"x-api-key": "a"}) == "a"
    assert presented_key({"authorization": "Bearer b"}) == "b"
    assert presented_key({"authorization": "Basic Yjpj"}) is None
    assert presented_key({}) is None


def test_bad_cidr_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks(("10.0.0.0/8", "nope"))


def test_names_never_match():
    assert not address_allowed("localhost", parse_networks(("127.0.0.0/8",)))
