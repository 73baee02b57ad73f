"""The referrers API through the mirror. `docker-registry` 2.8 has no referrers API (`404 page not found`), so
against it the mirror answers from the tag schema (`sha256-<hex>`), filtering by `artifactType` itself. The
pass-through of an upstream that has the API is checked against a small stand-in (the real registry cannot).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import oci_error_code
from tests.proxy.read_api import OCI_INDEX, OCI_MANIFEST, mirror, push_tiny_image, put_manifest
from tests.support.http_server import BackgroundHTTPServer
from tests.support.registry import RegistryServer
from upstream.registry import UpstreamRegistry

NAME = "referrers.example.test"
REPO = "test/signed"
SIGNATURE = "application/vnd.example.signature"
SBOM = "application/vnd.example.sbom"


def descriptor(digest: str, size: int, artifact_type: str) -> dict[str, object]:
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "artifactType": artifact_type}


@pytest.fixture
def subject(registry: RegistryServer) -> tuple[str, bytes]:
    """An image with two referrers (a signature, an SBOM) in the tag schema; returns its digest and that index."""
    digest, size = push_tiny_image(registry.url, REPO, ["v1"])
    subject_field = {"subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}}
    referrers = [
        descriptor(*push_tiny_image(registry.url, REPO, [], extra={"artifactType": kind, **subject_field}), kind)
        for kind in (SIGNATURE, SBOM)
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": referrers}
    put_manifest(registry.url, REPO, "sha256-" + digest.removeprefix("sha256:"), index, OCI_INDEX)
    return digest, json.dumps(index).encode()


def test_without_a_referrers_api_the_tag_schema_answers(
    tmp_path: Path, registry: RegistryServer, subject: tuple[str, bytes]
) -> None:
    digest, index = subject
    assert httpx.get(f"{registry.url}/v2/{REPO}/referrers/{digest}", timeout=30).status_code == 404
    other, _ = push_tiny_image(registry.url, REPO, ["v2"], extra={"annotations": {"x": "y"}})
    with mirror(tmp_path, [UpstreamRegistry(name=NAME, url=registry.url)]) as url, httpx.Client(base_url=url) as client:
        everything = client.get(f"/v2/{REPO}/referrers/{digest}")
        signatures = client.get(f"/v2/{NAME}/{REPO}/referrers/{digest}", params={"artifactType": SIGNATURE})
        none_of_that = client.get(f"/v2/{REPO}/referrers/{digest}", params={"artifactType": "x/y"})
        no_referrers = client.get(f"/v2/{REPO}/referrers/{other}")
        unknown_repository = client.get(f"/v2/test/nothing/referrers/{digest}")
        bad_digest = client.get(f"/v2/{REPO}/referrers/sha256:xyz")
    assert (everything.status_code, everything.content) == (200, index)
    assert everything.headers["content-type"] == OCI_INDEX
    assert "oci-filters-applied" not in everything.headers
    assert signatures.status_code == 200
    assert [m["artifactType"] for m in signatures.json()["manifests"]] == [SIGNATURE]
    assert signatures.json()["mediaType"] == OCI_INDEX
    assert signatures.headers["oci-filters-applied"] == "artifactType"
    assert none_of_that.json()["manifests"] == []
    assert none_of_that.headers["oci-filters-applied"] == "artifactType"
    # No tag for it: an empty index, as a registry with the API answers.
    assert (no_referrers.status_code, no_referrers.json()) == (
        200, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    # docker-registry answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a tag of a repository it lacks: empty too.
    assert (unknown_repository.status_code, unknown_repository.json()["manifests"]) == (200, [])
    assert (bad_digest.status_code, oci_error_code(bad_digest.content)) == (400, "DIGEST_INVALID")


FILTERED = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    descriptor("sha256:" + "1" * 64, 10, SIGNATURE)
]}).encode()


class ReferrersUpstream(BackgroundHTTPServer):
    """A registry with the referrers API that filters by artifactType: records every path asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", OCI_INDEX)
                self.send_header("OCI-Filters-Applied", "artifactType")
                self.send_header("Content-Length", str(len(FILTERED)))
                self.end_headers()
                self.wfile.write(FILTERED)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def test_an_upstream_referrers_api_is_passed_through(tmp_path: Path) -> None:
    digest = "sha256:" + "2" * 64
    with ReferrersUpstream() as upstream:
        registry = UpstreamRegistry(name=NAME, url=upstream.base_url)
        with mirror(tmp_path, [registry]) as url:
            answer = httpx.get(f"{url}/v2/{REPO}/referrers/{digest}", params={"artifactType": SIGNATURE}, timeout=30)
    assert (answer.status_code, answer.content) == (200, FILTERED)
    assert answer.headers["oci-filters-applied"] == "artifactType"
    assert upstream.paths == [f"/v2/{REPO}/referrers/{digest}?artifactType=application%2Fvnd.example.signature"]
