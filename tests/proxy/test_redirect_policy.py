"""An upstream that redirects into internal networks gets a client an OCI error, and the internal service not one
request; with the registry's `redirect_networks` admitting the target, the same redirects are followed.

The upstream is a real `docker-registry` behind a small redirecting front (tests/support/redirecting_front.py); the
mirror (the product's app and peer, in-process) has the front as its registry.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import oci_error_code, push_blob, sha256_digest
from tests.proxy.read_api import OCI_MANIFEST, mirror, put_manifest
from tests.support.redirecting_front import FORWARD, SECRET, InternalService, RedirectingFront
from tests.support.registry import RegistryServer
from upstream.registry import UpstreamRegistry

NAME = "redirecting.example.test"
REPO = "team/app"
LAYER = b"the one layer of the image, " * 1000
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture
def image(registry: RegistryServer) -> tuple[str, str]:
    """`team/app:v1` in the real registry, one layer; returns the manifest's and the layer's digests."""
    config = push_blob(registry.url, REPO, b"{}")
    layer = push_blob(registry.url, REPO, LAYER)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(LAYER)}],
    }
    return put_manifest(registry.url, REPO, "v1", manifest, OCI_MANIFEST), layer


@pytest.fixture
def internal() -> Iterator[InternalService]:
    with InternalService() as service:
        yield service


def internal_targets(internal: InternalService) -> list[str]:
    port = internal.base_url.rpartition(":")[2]
    return [
        internal.base_url,  # 127.0.0.1 on another port than the registry's
        f"http://localhost:{port}",  # a name that resolves to loopback
        f"http://[::ffff:127.0.0.1]:{port}",  # IPv4-mapped loopback
        "http://169.254.169.254",  # a cloud metadata service
        "http://100.64.0.1",  # shared address space
    ]


@pytest.mark.parametrize("target", range(5))
def test_redirects_into_internal_addresses_give_an_oci_error_and_reach_nothing(
    tmp_path: Path, registry: RegistryServer, image: tuple[str, str], internal: InternalService, target: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest_digest, layer = image
    redirect_to = internal_targets(internal)[target]
    with RedirectingFront(registry.url, redirect_to + "/?signature=s3cr3t&") as front:
        registries = [UpstreamRegistry(name=NAME, url=front.base_url)]
        with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=60) as client:
            answers = {
                "manifest by tag": client.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST}),
                "manifest HEAD": client.head(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST}),
                "manifest by digest": client.get(f"/v2/{REPO}/manifests/{manifest_digest}"),
                "blob": client.get(f"/v2/{REPO}/blobs/{layer}"),
                "blob HEAD": client.head(f"/v2/{REPO}/blobs/{layer}"),
            }
        redirected = front.redirects()
    for what, answer in answers.items():
        assert answer.status_code == 502, (what, answer.status_code, answer.content[:300])
        assert SECRET not in answer.content
        if answer.request.method == "GET":
            assert oci_error_code(answer.content) == "UPSTREAM_FAILED", (what, answer.content[:300])
            detail = json.loads(answer.content)["errors"][0]["detail"]
            assert "refused a redirect" in detail and "s3cr3t" not in detail, detail
    assert internal.recorded() == []
    # Every route met the redirect (the blob GET never started: its access check was refused).
    assert {r.split(" ")[0] for r in redirected} == {"GET", "HEAD"}
    refusals = [r for r in caplog.records if r.name == "upstream.redirects"]
    assert refusals and all(r.levelname == "WARNING" and "s3cr3t" not in r.getMessage() for r in refusals)


def test_a_blob_whose_body_alone_is_redirected_inside_gives_an_oci_error(
    tmp_path: Path, registry: RegistryServer, image: tuple[str, str], internal: InternalService
) -> None:
    # The access check (HEAD) goes to the registry; only the body's GET is redirected (through the raw client).
    _, layer = image
    with RedirectingFront(registry.url, internal.base_url, redirected=frozenset({"GET"})) as front:
        registries = [UpstreamRegistry(name=NAME, url=front.base_url)]
        with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=60) as client:
            answer = client.get(f"/v2/{REPO}/blobs/{layer}")
        redirected = front.redirects()
    assert answer.status_code == 502, answer.content[:300]
    assert oci_error_code(answer.content) == "UPSTREAM_FAILED"
    assert SECRET not in answer.content
    assert any(r.startswith("GET ") and layer in r for r in redirected)
    assert internal.recorded() == []


@pytest.mark.parametrize("networks", [LOOPBACK, ()], ids=["redirect_networks", "none"])
def test_redirect_networks_admit_private_object_storage(
    tmp_path: Path, registry: RegistryServer, image: tuple[str, str],
    networks: tuple[ipaddress.IPv4Network, ...],
) -> None:
    # The front redirects to the real registry itself, on loopback at another port: with the registry's
    # redirect_networks admitting loopback the pull works, without them it is refused.
    manifest_digest, layer = image
    with RedirectingFront(registry.url, registry.url) as front:
        registries = [UpstreamRegistry(name=NAME, url=front.base_url, redirect_networks=networks)]
        with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=60) as client:
            manifest = client.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
            blob = client.get(f"/v2/{REPO}/blobs/{layer}")
        redirected = front.redirects()
    assert redirected
    if not networks:
        assert (manifest.status_code, oci_error_code(manifest.content)) == (502, "UPSTREAM_FAILED")
        assert (blob.status_code, oci_error_code(blob.content)) == (502, "UPSTREAM_FAILED")
        return
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["docker-content-digest"] == manifest_digest
    assert sha256_digest(manifest.content) == manifest_digest
    assert blob.status_code == 200, blob.text[:300]
    assert blob.content == LAYER


def test_redirects_to_the_registrys_own_origin_are_followed(
    tmp_path: Path, registry: RegistryServer, image: tuple[str, str]
) -> None:
    # Same scheme, host and port as the registry's URL: no redirect_networks needed, loopback or not.
    manifest_digest, layer = image
    with RedirectingFront(registry.url, "") as front:
        front.redirect_to = front.base_url + FORWARD
        registries = [UpstreamRegistry(name=NAME, url=front.base_url)]
        with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=60) as client:
            manifest = client.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
            blob = client.get(f"/v2/{REPO}/blobs/{layer}")
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["docker-content-digest"] == manifest_digest
    assert blob.status_code == 200 and blob.content == LAYER
