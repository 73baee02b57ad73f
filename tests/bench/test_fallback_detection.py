"""A client's own request in the upstream's log is a fallback around the mirror: the storm counts it by User-Agent.

The lines are docker-registry 2.8.2's own log format, as a storm's upstream wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.registry import client_requests, log_offset


def _line(agent: str, uri: str, msg: str = "response completed", status: int = 200) -> str:
    return json.dumps({
        "http.request.method": "GET", "http.request.remoteaddr": "10.213.229.12:54058", "http.request.uri": uri,
        "http.request.useragent": agent, "http.response.duration": "1.5ms", "http.response.status": status,
        "http.response.written": 2, "level": "info", "msg": msg, "time": "2026-12-04T23:10:11.09816431Z",
    })


def test_only_requests_the_peers_did_not_send_count_also_refused_ones(tmp_path: Path) -> None:
    log = tmp_path / "upstream.log"
    log.write_text(_line("skopeo/1.9.3", "/v2/") + "\n" + "listening on [::]:5000\n")
    offset = log_offset(log)
    lines = [
        _line("damselfly", "/v2/bench/app/blobs/sha256:ab"),
        _line("python-httpx/0.29.0", "/v2/bench/app/manifests/v1"),
        _line("containerd/1.6.20", "/v2/bench/app/manifests/v1", "response completed with error", 404),
        _line("libpod/4.3.1", "/v2/bench/app/blobs/sha256:ab"),
        "not json at all",
    ]
    log.write_text(log.read_text() + "\n".join(lines) + "\n")
    # The skopeo line before the offset is another storm's (a direct one): not counted.
    assert client_requests(log, offset) == 2
    assert client_requests(log) == 3
