"""Roles scoped to clusters. A user whose `clusters` list is not empty holds its role only there: it sees and
cordons only the hosts in those clusters, makes tasks only to them, and sees and acts on only the tasks all of whose
hosts were in them when the task was made (kept per task host, so a cluster's scopes changing later does not move
tasks out of or into anyone's sight). An empty list holds everywhere; admins are never scoped.

Clusters themselves (create, change, delete, rotate a join token) are for unscoped principals only: a scoped one could
otherwise widen its own scope by changing a cluster's labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .api_errors import ApiError
from .hosts import HostView
from .models import TaskHost

# The most clusters one user may be scoped to: a list, not a query language.
MAX_CLUSTERS = 64


def holds(scope: frozenset[str], clusters: Iterable[str]) -> bool:
    """Whether a principal of `scope` reaches something in `clusters`."""
    return not scope or not scope.isdisjoint(clusters)


def hosts_in(scope: frozenset[str], views: Sequence[HostView]) -> list[HostView]:
    return [view for view in views if holds(scope, view.clusters)]


def task_held(scope: frozenset[str], rows: Sequence[TaskHost]) -> bool:
    """A task is in a scope when every one of its hosts was: a scoped operator never stops another cluster's work."""
    return not scope or all(holds(scope, row.clusters or ()) for row in rows)


def beyond(scope: frozenset[str], what: str) -> ApiError:
    clusters = ", ".join(sorted(scope))
    return ApiError(403, "forbidden", f"{what}: your role holds only in clusters {clusters}")
