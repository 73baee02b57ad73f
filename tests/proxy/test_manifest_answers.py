"""Manifest answers the spec and its conformance suite expect, against the real `docker-registry`:

- a signed schema-1 manifest (pushed with a real ES256 signature into a registry with schema-1 enabled) passes,
  named by the digest of its payload, by tag and by digest; a tampered one is still refused by digest;
- a reference that is neither tag nor digest is 404 MANIFEST_UNKNOWN for GET and HEAD;
- pushes keep answering UNSUPPORTED, on every route.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from core.schema1 import signed_manifest_sha256, signed_payload
from tests.faults.helpers import oci_error_code, push_blob
from tests.proxy.read_api import OCI_MANIFEST, mirror, push_tiny_image
from tests.support.fixtures import require_binary
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.schema1_sign import SIGNED_SCHEMA1, sign_schema1
from upstream.registry import UpstreamRegistry

NAME = "answers.example.test"
REPO = "test/old"
SCHEMA1_ENABLED = {"compatibility": {"schema1": {"enabled": True}}}


@pytest.fixture
def schema1_registry(registry_factory: RegistryFactory) -> tuple[RegistryServer, str]:
    """A registry holding `test/old:v1` as a signed schema-1 manifest; returns it and the manifest's digest."""
    require_binary("openssl")
    registry = registry_factory(extra_config=SCHEMA1_ENABLED)
    layer = push_blob(registry.url, REPO, b"an old layer")
    history = [{"v1Compatibility": json.dumps({"id": "a" * 64, "created": "2026-01-01T00:00:00Z"})}]
    manifest = {
        "schemaVersion": 1, "name": REPO, "tag": "v1", "architecture": "amd64",
        "fsLayers": [{"blobSum": layer}], "history": history,
    }
    answer = httpx.put(
        f"{registry.url}/v2/{REPO}/manifests/v1", content=sign_schema1(manifest),
        headers={"Content-Type": SIGNED_SCHEMA1}, timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return registry, answer.headers["docker-content-digest"]


def test_a_signed_schema1_manifest_passes_by_tag_and_by_digest(
    tmp_path: Path, schema1_registry: tuple[RegistryServer, str]
) -> None:
    registry, digest = schema1_registry
    accept = {"Accept": SIGNED_SCHEMA1}
    direct = httpx.get(f"{registry.url}/v2/{REPO}/manifests/v1", headers=accept, timeout=30)
    assert direct.headers["content-type"] == SIGNED_SCHEMA1
    registries = [UpstreamRegistry(name=NAME, url=registry.url)]
    with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=30, headers=accept) as client:
        by_tag = client.get(f"/v2/{REPO}/manifests/v1")
        by_digest = client.get(f"/v2/{REPO}/manifests/{digest}")
        head = client.head(f"/v2/{REPO}/manifests/{digest}")
    # docker-registry signs a schema-1 manifest afresh (new time) each time it serves it: the bodies differ, the
    # payload, and so the digest, do not.
    for answer in (by_tag, by_digest):
        assert answer.status_code == 200, answer.text
        assert signed_payload(answer.content) == signed_payload(direct.content)
        assert answer.headers["docker-content-digest"] == digest
        assert answer.headers["content-type"] == SIGNED_SCHEMA1
    # Not the hash of the body: of the payload the signatures cover.
    assert digest == "sha256:" + signed_manifest_sha256(direct.content)
    assert (head.status_code, head.headers["docker-content-digest"]) == (200, digest)


def test_a_tampered_schema1_manifest_is_refused_by_digest(
    tmp_path: Path, schema1_registry: tuple[RegistryServer, str]
) -> None:
    registry, digest = schema1_registry
    hex_digest = digest.removeprefix("sha256:")
    data = registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
    # Inside the signed payload, the same length: still a well-formed signed manifest, another payload.
    data.write_bytes(data.read_bytes().replace(b'"amd64"', b'"arm64"'))
    with mirror(tmp_path, [UpstreamRegistry(name=NAME, url=registry.url)]) as url:
        answer = httpx.get(f"{url}/v2/{REPO}/manifests/{digest}", headers={"Accept": SIGNED_SCHEMA1}, timeout=30)
    assert (answer.status_code, oci_error_code(answer.content)) == (502, "DIGEST_INVALID")


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "-bad", "sha256:xyz", "t" * 129])
def test_an_impossible_reference_is_an_unknown_manifest(
    tmp_path: Path, registry: RegistryServer, reference: str
) -> None:
    with mirror(tmp_path, [UpstreamRegistry(name=NAME, url=registry.url)]) as url:
        get = httpx.get(f"{url}/v2/test/app/manifests/{reference}", timeout=30)
        head = httpx.head(f"{url}/v2/test/app/manifests/{reference}", timeout=30)
    assert (get.status_code, oci_error_code(get.content)) == (404, "MANIFEST_UNKNOWN")
    assert (head.status_code, head.content) == (404, b"")


def test_pushes_are_unsupported_on_every_route(tmp_path: Path, registry: RegistryServer) -> None:
    digest, _ = push_tiny_image(registry.url, "test/app", ["v1"])
    paths = [
        "/v2/test/app/manifests/v1", f"/v2/test/app/blobs/{digest}", "/v2/test/app/blobs/uploads/",
        "/v2/test/app/tags/list", "/v2/_catalog", f"/v2/test/app/referrers/{digest}",
    ]
    with mirror(tmp_path, [UpstreamRegistry(name=NAME, url=registry.url)]) as url, httpx.Client(base_url=url) as client:
        answers = [(method, path, client.request(method, path)) for method in ("PUT", "POST", "PATCH", "DELETE")
                   for path in paths]
    for method, path, answer in answers:
        assert (answer.status_code, oci_error_code(answer.content)) == (405, "UNSUPPORTED"), (method, path)
    # And nothing was removed upstream.
    accept = {"Accept": OCI_MANIFEST}
    assert httpx.head(f"{registry.url}/v2/test/app/manifests/v1", headers=accept, timeout=30).status_code == 200
