"""Which hosts a task's targets name (manager/task_targets.py), over host views as the platform shows them."""

from __future__ import annotations

import pytest

from manager.hosts import HostView
from manager.models import Host
from manager.task_targets import BadTargets, Targets, resolve


def _view(host_id: str, address: str, state: str = "healthy", labels: dict[str, str] | None = None,
          clusters: tuple[str, ...] = (), hostname: str = "", cordoned: bool = False) -> HostView:
    row = Host(host_id=host_id, url=f"http://{address}:65002", labels=labels or {}, hostname=hostname,
               cordoned=cordoned, first_seen=1.0, last_seen=1.0)
    return HostView(row, state, clusters)


VIEWS = [
    _view("p1", "10.0.0.1", labels={"zone": "a"}, clusters=("prod",), hostname="web-1"),
    _view("p2", "10.0.0.2", state="down", labels={"zone": "a"}, clusters=("prod",)),
    _view("p3", "10.0.0.3", labels={"zone": "b"}, clusters=("prod",)),
    _view("s1", "10.0.1.1", labels={"zone": "b"}, clusters=("staging",), cordoned=True),
]


def _hosts(**targets: object) -> tuple[str, ...]:
    return resolve(Targets.parse(targets), VIEWS, {"prod", "staging"}).hosts


def test_hosts_by_id_address_host_port_or_name() -> None:
    assert _hosts(hosts=["p3", "10.0.0.2", "web-1"]) == ("p1", "p2", "p3")
    assert _hosts(hosts=["10.0.0.3:65002"]) == ("p3",)


def test_clusters_selectors_and_their_union() -> None:
    assert _hosts(clusters=["prod"]) == ("p1", "p2", "p3")
    assert _hosts(selector={"zone": "b"}) == ("p3",)
    assert _hosts(selector=["zone=a"], hosts=["p3"]) == ("p1", "p2", "p3")


def test_count_and_percent_take_the_live_hosts_first() -> None:
    assert _hosts(clusters=["prod"], count=2) == ("p1", "p3")
    assert _hosts(clusters=["prod"], percent=34) == ("p1", "p3")
    assert _hosts(clusters=["prod"], percent=100) == ("p1", "p2", "p3")


def test_cordoned_hosts_are_skipped_and_named() -> None:
    resolved = resolve(Targets.parse({"selector": {"zone": "b"}}), VIEWS, {"prod", "staging"})
    assert resolved.hosts == ("p3",) and resolved.cordoned == ("s1",)
    with pytest.raises(BadTargets, match="1 cordoned"):
        resolve(Targets.parse({"clusters": ["staging"]}), VIEWS, {"prod", "staging"})


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"hosts": ["nobody"]}, "no host 'nobody'"),
        ({"clusters": ["qa"]}, "no cluster 'qa'"),
        ({}, "name hosts, clusters or a selector"),
        ({"hosts": "p1"}, "must be a list of names"),
        ({"hosts": ["p1"], "count": -1}, "count must be"),
        ({"hosts": ["p1"], "percent": 101}, "percent must be"),
        ({"selector": ["zone"]}, "KEY=VALUE"),
        ({"selector": {"bad key": "x"}}, "no label key"),
        ([], "must be an object"),
    ],
)
def test_bad_targets_say_what_is_wrong(targets: object, message: str) -> None:
    with pytest.raises(BadTargets, match=message):
        resolve(Targets.parse(targets), VIEWS, {"prod", "staging"})
