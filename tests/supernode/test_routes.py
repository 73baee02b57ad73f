"""The route table: the paths it builds, and which routes the fast path takes."""

from __future__ import annotations

from supernode import routes

DIGEST = "sha256:" + "ab" * 32


def test_urls_fill_in_the_parameter_as_one_path_segment() -> None:
    assert routes.JOIN.url(digest=DIGEST) == f"/api/v1/swarms/{DIGEST}/join"
    assert routes.HEARTBEAT.url(peer_id="host-1_a.b~c@d") == "/api/v1/peers/host-1_a.b~c@d/heartbeat"
    # What would end the segment, start a query or escape is quoted, so an odd id stays one segment.
    assert routes.LEAVE.url(peer_id="a/b?c#d e%") == "/api/v1/peers/a%2Fb%3Fc%23d%20e%25"
    assert routes.REGISTER.url() == "/api/v1/peers"


def test_the_fast_path_takes_the_frequent_routes_only() -> None:
    fast = {route.name: route.fast_key for route in routes.ROUTES if route.fast_key is not None}
    assert fast == {
        "heartbeat": ("POST", "peers", "heartbeat"),
        "join": ("POST", "swarms", "join"),
        "report": ("POST", "swarms", "report"),
        "view": ("GET", "swarms", "view"),
        # A host's long-poll of its jobs and its progress reports: one of each per host, 10,000 hosts.
        "host_jobs": ("GET", "peers", "jobs"),
        "job_progress": ("POST", "peers", "job-progress"),
    }
    params = {route.name: route.param for route in routes.ROUTES if route.param}
    assert params == dict(
        heartbeat="peer_id", leave="peer_id", join="digest", report="digest", view="digest", clear_suspect="peer_id",
        host_jobs="peer_id", job_progress="peer_id", put_job="job_id", cancel_job="job_id",
    )
    assert len({route.name for route in routes.ROUTES}) == len(routes.ROUTES)
    assert len({(route.method, route.path) for route in routes.ROUTES}) == len(routes.ROUTES)
