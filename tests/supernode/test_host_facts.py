"""A host's facts on the wire (supernode/api.py HostFacts): the traffic counters, their defaults, and the fields of
a newer peer, which an older supernode ignores within a bound."""

from __future__ import annotations

import pytest

from supernode.api import MAX_UNKNOWN_HOST_FIELDS, BadRequest, HostFacts


def test_the_traffic_counters_travel_and_default_to_zero() -> None:
    facts = HostFacts(hostname="h", fetched_upstream=1, fetched_peers=2, served_peers=3, served_clients=4)
    assert HostFacts.parse(facts.to_json()) == facts
    older = HostFacts.parse({"hostname": "h", "disk_used": 5})
    assert (older.fetched_upstream, older.fetched_peers, older.served_peers, older.served_clients) == (0, 0, 0, 0)


def test_a_newer_peers_unknown_fields_are_ignored_up_to_a_bound() -> None:
    newer = {"hostname": "h", **{f"future_{i}": i for i in range(MAX_UNKNOWN_HOST_FIELDS)}}
    assert HostFacts.parse(newer) == HostFacts(hostname="h")
    with pytest.raises(BadRequest, match="unknown fields"):
        HostFacts.parse({**newer, "one_too_many": 1})


def test_a_counter_must_be_a_whole_number() -> None:
    with pytest.raises(BadRequest, match=r"host\.fetched_peers"):
        HostFacts.parse({"fetched_peers": -1})
