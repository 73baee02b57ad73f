"""Which hosts a task goes to, from what its creator named: hosts by id or address, clusters (their scopes place
hosts: manager/clusters.py), a label selector; a host any of them names is targeted. Then, optionally, a count or a
percentage of those (the live ones first). Cordoned hosts are skipped and said so. Down hosts stay targeted: they
are given their job when they come back, until the task's timeout (manager/task_runner.py).

Resolved once, at create: the task's hosts are fixed from then on (a retry goes to the same ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .clusters import LABEL_KEY, address_of
from .hosts import DOWN, HostView

MAX_NAMED = 10_000


class BadTargets(ValueError):
    """The message says which part of the targets is wrong."""


@dataclass(frozen=True, slots=True)
class Targets:
    hosts: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    selector: dict[str, str] = field(default_factory=dict)
    count: int = 0
    percent: float = 0.0

    @classmethod
    def parse(cls, body: Any) -> Targets:
        if not isinstance(body, dict):
            raise BadTargets("targets must be an object: {hosts, clusters, selector, count, percent}")
        unknown = sorted(set(body) - {"hosts", "clusters", "selector", "count", "percent"})
        if unknown:
            raise BadTargets(f"targets: unknown field {str(unknown[0])[:64]!r}")
        hosts = _names(body, "hosts")
        clusters = _names(body, "clusters")
        selector = _selector(body.get("selector"))
        count, percent = body.get("count", 0), body.get("percent", 0)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_NAMED:
            raise BadTargets(f"targets.count must be a whole number from 1 to {MAX_NAMED}")
        if not isinstance(percent, int | float) or isinstance(percent, bool) or not 0 <= percent <= 100:
            raise BadTargets("targets.percent must be a number from 1 to 100")
        if count and percent:
            raise BadTargets("targets: a count or a percent, not both")
        if not (hosts or clusters or selector):
            raise BadTargets("targets: name hosts, clusters or a selector")
        return cls(hosts, clusters, selector, count, float(percent))

    def to_json(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "clusters": list(self.clusters), "selector": dict(self.selector),
                "count": self.count, "percent": self.percent}


@dataclass(frozen=True, slots=True)
class Resolved:
    # Host ids, in the order the platform first saw them.
    hosts: tuple[str, ...]
    # Named or matched but cordoned: given no job.
    cordoned: tuple[str, ...]


def _names(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 255 for v in value):
        raise BadTargets(f"targets.{key} must be a list of names")
    if len(value) > MAX_NAMED:
        raise BadTargets(f"targets.{key}: at most {MAX_NAMED}")
    return tuple(dict.fromkeys(value))


def _selector(value: Any) -> dict[str, str]:
    """An object of strings, or a list of `KEY=VALUE`."""
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        pairs = [text.partition("=") for text in value]
        if not all(sep for _, sep, _ in pairs):
            raise BadTargets("targets.selector: expected KEY=VALUE items")
        value = {key: val for key, _, val in pairs}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadTargets("targets.selector must be an object of strings (every KEY=VALUE must match)")
    for key in value:
        if not LABEL_KEY.match(key):
            raise BadTargets(f"targets.selector: {key[:64]!r} is no label key")
    return dict(value)


def _names_host(view: HostView, name: str) -> bool:
    row = view.row
    if name in (row.host_id, row.url) or (row.hostname and name.lower() == row.hostname.lower()):
        return True
    address = address_of(row.url)
    if address is None:
        return False
    host_port = row.url.split("://", 1)[-1].rstrip("/")
    return name in (str(address), host_port)


def resolve(targets: Targets, views: list[HostView], known_clusters: set[str]) -> Resolved:
    """BadTargets if a named host or cluster is unknown, or nothing is left to target."""
    missing = sorted(set(targets.clusters) - known_clusters)
    if missing:
        raise BadTargets(f"no cluster {missing[0][:64]!r}")
    chosen: dict[str, HostView] = {}
    for name in targets.hosts:
        found = [view for view in views if _names_host(view, name)]
        if not found:
            raise BadTargets(f"no host {name[:80]!r} (by id, address or host name)")
        chosen.update((view.row.host_id, view) for view in found)
    for view in views:
        if set(targets.clusters) & set(view.clusters) or (
            targets.selector and all(view.row.labels.get(k) == v for k, v in targets.selector.items())
        ):
            chosen[view.row.host_id] = view
    ordered = [view for view in views if view.row.host_id in chosen]
    cordoned = tuple(view.row.host_id for view in ordered if view.row.cordoned)
    eligible = [view for view in ordered if not view.row.cordoned]
    wanted = targets.count or (math.ceil(len(eligible) * targets.percent / 100) if targets.percent else 0)
    if wanted:
        # The live hosts first: a count of hosts is best served by those that can start now.
        keep = {view.row.host_id for view in sorted(eligible, key=lambda view: view.state == DOWN)[:wanted]}
        eligible = [view for view in eligible if view.row.host_id in keep]
    if not eligible:
        detail = f" ({len(cordoned)} cordoned)" if cordoned else ""
        raise BadTargets(f"the targets match no host that may take a task{detail}")
    return Resolved(tuple(view.row.host_id for view in eligible), cordoned)
