"""Tag lists and the catalog through the mirror, against the real `docker-registry`: passed through with their
pagination, the `Link` pointing at the mirror's own path, the manifests' access rules, a short per-credential
cache, `UNSUPPORTED` for a registry that refuses its catalog, and `skopeo list-tags` listing every tag.

`docker-registry` 2.8 pages its catalog but not tag lists (it ignores `n` and `last` there): the tag list's `Link`
is checked against a small stand-in upstream that pages, the only test here not on the real registry.
"""

from __future__ import annotations

import json
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.faults.helpers import oci_error_code
from tests.proxy.read_api import mirror, push_tiny_image
from tests.support.fixtures import require_binary
from tests.support.http_server import BackgroundHTTPServer
from tests.support.registry import RegistryFactory, RegistryServer
from upstream.registry import UpstreamRegistry

NAME = "listing.example.test"
REPO = "test/tags"
TAGS = [f"t{i:02d}" for i in range(13)]


def upstream(registry: RegistryServer) -> UpstreamRegistry:
    return UpstreamRegistry(name=NAME, url=registry.url)


def tag_list_gets(registry: RegistryServer) -> list[str]:
    return [r["uri"] for r in registry.requests() if r["method"] == "GET" and "/tags/list" in r["uri"]]


@pytest.fixture
def tagged(registry: RegistryServer) -> RegistryServer:
    push_tiny_image(registry.url, REPO, TAGS)
    push_tiny_image(registry.url, "test/other", ["v1"])
    return registry


def test_a_tag_list_passes_through_with_its_query(tmp_path: Path, tagged: RegistryServer) -> None:
    direct = httpx.get(f"{tagged.url}/v2/{REPO}/tags/list", timeout=30)
    with mirror(tmp_path, [upstream(tagged)]) as url, httpx.Client(base_url=url, timeout=30) as client:
        whole = client.get(f"/v2/{REPO}/tags/list")
        prefixed = client.get(f"/v2/{NAME}/{REPO}/tags/list")
        tagged.reset_counts()
        paged = client.get(f"/v2/{REPO}/tags/list", params={"n": "5", "last": "t04"})
        head = client.head(f"/v2/{REPO}/tags/list")
    assert (whole.status_code, whole.content) == (200, direct.content)
    assert sorted(whole.json()["tags"]) == TAGS
    assert whole.headers["content-type"].startswith("application/json")
    assert prefixed.content == direct.content
    assert paged.status_code == 200
    assert tag_list_gets(tagged) == [f"/v2/{REPO}/tags/list?n=5&last=t04"]
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(direct.content)))


def test_the_catalog_is_paginated_with_links_to_the_mirror(tmp_path: Path, tagged: RegistryServer) -> None:
    with mirror(tmp_path, [upstream(tagged)]) as url, httpx.Client(base_url=url, timeout=30) as client:
        whole = client.get("/v2/_catalog")
        assert whole.json() == {"repositories": ["test/other", REPO]}
        for start in ("/v2/_catalog", f"/v2/{NAME}/_catalog"):
            first = client.get(start, params={"n": "1"})
            assert first.json() == {"repositories": ["test/other"]}
            link = first.headers["link"]
            target = link[1 : link.index(">")]
            assert urlsplit(target).path == start, link
            assert link.endswith('; rel="next"')
            second = client.get(target)
            assert second.json() == {"repositories": [REPO]}
        # containerd's `ns` stays in the link, so following it reaches the same registry.
        by_ns = client.get("/v2/_catalog", params={"n": "1", "ns": NAME})
        assert "ns=listing.example.test" in by_ns.headers["link"]


def test_invalid_counts_are_the_clients_error(tmp_path: Path, tagged: RegistryServer) -> None:
    with mirror(tmp_path, [upstream(tagged)]) as url, httpx.Client(base_url=url, timeout=30) as client:
        tagged.reset_counts()
        answers = [client.get(path, params={"n": n}) for path in (f"/v2/{REPO}/tags/list", "/v2/_catalog")
                   for n in ("x", "-1", "1.5", "²")]
    for answer in answers:
        assert (answer.status_code, oci_error_code(answer.content)) == (400, "PAGINATION_NUMBER_INVALID")
    assert tag_list_gets(tagged) == []


def test_an_unknown_repository_is_the_upstreams_404(tmp_path: Path, tagged: RegistryServer) -> None:
    with mirror(tmp_path, [upstream(tagged)]) as url:
        answer = httpx.get(f"{url}/v2/test/nothing/tags/list", timeout=30)
    assert (answer.status_code, oci_error_code(answer.content)) == (404, "NAME_UNKNOWN")


def test_access_follows_the_upstream_and_the_cache_never_crosses_credentials(
    tmp_path: Path, registry: RegistryServer, registry_factory: RegistryFactory
) -> None:
    push_tiny_image(registry.url, REPO, TAGS[:2])
    shared = {"storage": {"filesystem": {"rootdirectory": str(registry.storage_dir)}}}
    basic = registry_factory(htpasswd=("alice", "wonderland"), extra_config=shared)
    with mirror(tmp_path, [upstream(basic)], listing_ttl=60.0) as url, httpx.Client(base_url=url, timeout=30) as client:
        allowed = client.get(f"/v2/{REPO}/tags/list", auth=("alice", "wonderland"))
        anonymous = client.get(f"/v2/{REPO}/tags/list")
        wrong = client.get(f"/v2/{REPO}/tags/list", auth=("alice", "nope"))
        catalog = client.get("/v2/_catalog")
        catalog_allowed = client.get("/v2/_catalog", auth=("alice", "wonderland"))
    assert allowed.status_code == 200 and sorted(allowed.json()["tags"]) == TAGS[:2]
    # The answer alice's credentials got is cached, but only for them.
    assert (anonymous.status_code, oci_error_code(anonymous.content)) == (401, "UNAUTHORIZED")
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert wrong.status_code == 401
    # A catalog the upstream refuses to this client is UNSUPPORTED, never an unknown path.
    assert (catalog.status_code, oci_error_code(catalog.content)) == (405, "UNSUPPORTED")
    assert catalog.json()["errors"][0]["detail"] == {"registry": NAME, "upstream_status": 401}
    assert catalog_allowed.json() == {"repositories": [REPO]}


def test_listings_are_cached_for_a_few_seconds_only(tmp_path: Path, tagged: RegistryServer) -> None:
    with mirror(tmp_path, [upstream(tagged)], listing_ttl=1.0) as url, httpx.Client(base_url=url, timeout=30) as client:
        tagged.reset_counts()
        first = client.get(f"/v2/{REPO}/tags/list").json()["tags"]
        push_tiny_image(tagged.url, REPO, ["new"])
        again = client.get(f"/v2/{REPO}/tags/list").json()["tags"]
        assert len(tag_list_gets(tagged)) == 1  # the burst cost the upstream one request
        assert sorted(again) == sorted(first)
        time.sleep(1.2)
        later = client.get(f"/v2/{REPO}/tags/list").json()["tags"]
    assert "new" in later and "new" not in first


class PagingUpstream(BackgroundHTTPServer):
    """A registry that pages tag lists (two per page) and offers no catalog: records every path asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.paths.append(self.path)
                if self.path.startswith(f"/v2/{REPO}/tags/list"):
                    last = dict(p.split("=", 1) for p in urlsplit(self.path).query.split("&") if "=" in p).get("last")
                    start = TAGS.index(last) + 1 if last else 0
                    page = TAGS[start : start + 2]
                    body = json.dumps({"name": REPO, "tags": page}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    if start + 2 < len(TAGS):
                        link = f"http://upstream.invalid/v2/{REPO}/tags/list?n=2&last={page[-1]}"
                        self.send_header("Link", f'<{link}>; rel="next"')
                else:
                    body = b'{"errors":[{"code":"UNSUPPORTED","message":"no"}]}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def test_a_paged_tag_list_links_to_the_path_the_client_used(tmp_path: Path) -> None:
    with PagingUpstream() as paging:
        registry = UpstreamRegistry(name=NAME, url=paging.base_url)
        with mirror(tmp_path, [registry]) as url, httpx.Client(base_url=url, timeout=30) as client:
            seen: list[str] = []
            path = f"/v2/{NAME}/{REPO}/tags/list?n=2"
            for _ in range(len(TAGS)):
                answer = client.get(path)
                seen += answer.json()["tags"]
                link = answer.headers.get("link")
                if link is None:
                    break
                path = link[1 : link.index(">")]
                # The upstream's link named itself; the client's next request stays on the mirror, by prefix.
                assert path.startswith(f"/v2/{NAME}/{REPO}/tags/list?"), link
            catalog = client.get("/v2/_catalog")
    assert seen == TAGS
    assert (catalog.status_code, oci_error_code(catalog.content)) == (405, "UNSUPPORTED")


def test_skopeo_lists_every_tag_through_the_mirror(tmp_path: Path, tagged: RegistryServer) -> None:
    require_binary("skopeo")
    with mirror(tmp_path, [upstream(tagged)]) as url:
        host = url.removeprefix("http://")
        listed = {}
        for image in (f"{host}/{REPO}", f"{host}/{NAME}/{REPO}"):
            result = subprocess.run(
                ["skopeo", "list-tags", "--tls-verify=false", f"docker://{image}"],
                capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            )
            assert result.returncode == 0, result.stderr
            listed[image] = sorted(json.loads(result.stdout)["Tags"])
    assert list(listed.values()) == [TAGS, TAGS]
