"""A manifest must parse as the media type it claims before a byte of it reaches a client.

The shape check on its own, then through the mirror: a stand-in upstream serves manifests by tag with the right
`Docker-Content-Digest` (so only the shape can give them away), and a real `docker-registry` whose stored manifest
was overwritten on disk.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.schema1 import SIGNED_SCHEMA1
from proxy.manifest_shape import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    BadManifestShape,
    check_manifest_shape,
)
from tests.faults.helpers import oci_error_code
from tests.proxy.read_api import mirror, push_tiny_image
from tests.support.http_server import BackgroundHTTPServer
from tests.support.registry import RegistryServer
from upstream.registry import UpstreamRegistry

DIGEST = "sha256:" + "a" * 64
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2}
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST, "size": 10}
IMAGE = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
INDEX = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{**CONFIG, "mediaType": OCI_MANIFEST}]}
SCHEMA1_BODY = {"schemaVersion": 1, "name": "team/app", "tag": "v1", "fsLayers": [], "history": []}
ARTIFACT = "application/vnd.example.artifact+json"


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


GOOD = [
    (IMAGE, OCI_MANIFEST),
    ({**IMAGE, "mediaType": DOCKER_MANIFEST}, DOCKER_MANIFEST),
    ({k: v for k, v in IMAGE.items() if k != "mediaType"}, OCI_MANIFEST),  # mediaType is optional in OCI
    ({**IMAGE, "layers": []}, OCI_MANIFEST),
    (INDEX, OCI_INDEX),
    ({**INDEX, "mediaType": DOCKER_LIST}, DOCKER_LIST),
    ({**INDEX, "manifests": []}, OCI_INDEX),
    (SCHEMA1_BODY, SIGNED_SCHEMA1),
    (SCHEMA1_BODY, SCHEMA1),
    ({"anything": ["an", "artifact"]}, ARTIFACT),
    ([1, 2, 3], "application/json"),
    (IMAGE, OCI_MANIFEST + "; charset=utf-8"),
]

BAD = [
    (b"<html>internal admin</html>", OCI_MANIFEST, "not JSON"),
    (b"\xff\xfe", ARTIFACT, "not JSON"),
    (encoded([IMAGE]), OCI_MANIFEST, "not a JSON object"),
    (encoded({**IMAGE, "schemaVersion": 1}), OCI_MANIFEST, "schemaVersion is not 2"),
    (encoded({**IMAGE, "schemaVersion": True}), OCI_MANIFEST, "schemaVersion is not 2"),
    (encoded({k: v for k, v in IMAGE.items() if k != "schemaVersion"}), OCI_MANIFEST, "schemaVersion is not 2"),
    (encoded(INDEX), OCI_MANIFEST, "its mediaType"),  # an index served as an image manifest
    (encoded({**IMAGE, "mediaType": DOCKER_MANIFEST}), OCI_MANIFEST, "its mediaType"),
    (encoded({**IMAGE, "config": None}), OCI_MANIFEST, "config is not a descriptor"),
    (encoded({**IMAGE, "config": {**CONFIG, "digest": "md5:x y"}}), OCI_MANIFEST, "config has no valid digest"),
    (encoded({**IMAGE, "config": {**CONFIG, "size": "2"}}), OCI_MANIFEST, "config has no valid size"),
    (encoded({**IMAGE, "config": {**CONFIG, "size": -1}}), OCI_MANIFEST, "config has no valid size"),
    (encoded({**IMAGE, "layers": {}}), DOCKER_MANIFEST, "its mediaType"),
    (encoded({**IMAGE, "mediaType": DOCKER_MANIFEST, "layers": {}}), DOCKER_MANIFEST, "layers is not a list"),
    (encoded({**IMAGE, "layers": [{**LAYER, "mediaType": 7}]}), OCI_MANIFEST, "layers[0] has no mediaType"),
    (encoded({**INDEX, "manifests": None}), OCI_INDEX, "manifests is not a list"),
    (encoded({**INDEX, "manifests": ["x"]}), OCI_INDEX, "manifests[0] is not a descriptor"),
    (encoded({**SCHEMA1_BODY, "schemaVersion": 2}), SIGNED_SCHEMA1, "schemaVersion is not 1"),
    (b"[]", SCHEMA1, "not a JSON object"),
    # A generic Content-Type does not excuse a body that names a known type.
    (encoded({"mediaType": OCI_MANIFEST, "schemaVersion": 2}), "application/json", "config is not a descriptor"),
]


@pytest.mark.parametrize(("manifest", "content_type"), GOOD)
def test_manifests_of_their_media_type_pass(manifest: Any, content_type: str) -> None:
    check_manifest_shape(encoded(manifest), content_type)


@pytest.mark.parametrize(("body", "content_type", "reason"), BAD)
def test_manifests_that_do_not_parse_as_their_media_type_are_refused(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(BadManifestShape) as refused:
        check_manifest_shape(body, content_type)
    assert str(refused.value).startswith(reason)


@dataclass
class ManifestUpstream(BackgroundHTTPServer):
    """A registry that serves `tags` (tag -> (Content-Type, body)) by tag and by digest, with each body's true
    digest."""

    tags: dict[str, tuple[str, bytes]]
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with upstream._lock:
                    upstream.requests.append(self.path)
                reference = self.path.rpartition("/manifests/")[2]
                digests = {"sha256:" + hashlib.sha256(b).hexdigest(): tag for tag, (_, b) in upstream.tags.items()}
                tag = digests.get(reference, reference)
                if self.path == "/v2/" or tag not in upstream.tags:
                    self.send_response(200 if self.path == "/v2/" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content_type, body = upstream.tags[tag]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


TAGGED = {
    "good": (OCI_MANIFEST, encoded(IMAGE)),
    "html": (OCI_MANIFEST, b"<html>internal admin</html>"),
    "index-as-image": (OCI_MANIFEST, encoded(INDEX)),
    "no-layers": (DOCKER_MANIFEST, encoded({k: v for k, v in IMAGE.items() if k != "layers"})),
    "schema1-v2": (SIGNED_SCHEMA1, encoded({**SCHEMA1_BODY, "schemaVersion": 2})),
}


@pytest.fixture
def upstream() -> Iterator[ManifestUpstream]:
    with ManifestUpstream(TAGGED) as server:
        yield server


@pytest.mark.parametrize("tag", sorted(TAGGED))
def test_a_tag_whose_manifest_does_not_parse_gives_an_oci_error(
    tmp_path: Path, upstream: ManifestUpstream, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = upstream.base_url.removeprefix("http://")
    content_type, body = TAGGED[tag]
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    registries = [UpstreamRegistry(name=name, url=upstream.base_url)]
    with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=30) as client:
        by_tag = client.get(f"/v2/team/app/manifests/{tag}", headers={"Accept": content_type})
        by_digest = client.get(f"/v2/team/app/manifests/{digest}", headers={"Accept": content_type})
    assert f"/v2/team/app/manifests/{tag}" in upstream.requests
    if tag == "good":
        assert (by_tag.status_code, by_tag.content) == (200, body)
        assert (by_digest.status_code, by_digest.content) == (200, body)
        return
    for answer in (by_tag, by_digest):
        assert answer.status_code == 502, answer.content[:300]
        assert oci_error_code(answer.content) == "MANIFEST_INVALID"
        assert body not in answer.content
        detail = json.loads(answer.content)["errors"][0]["detail"]
        assert detail.startswith("the upstream sent a manifest that does not parse as its media type")
    assert any(r.levelname == "WARNING" and "does not parse" in r.getMessage() for r in caplog.records)


def test_a_real_registrys_overwritten_manifest_is_refused_by_tag(tmp_path: Path, registry: RegistryServer) -> None:
    digest, _ = push_tiny_image(registry.url, "team/app", ["v1"])
    hex_digest = digest.removeprefix("sha256:")
    data = registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
    # Still JSON and the same length; its layers are gone under another key.
    data.write_bytes(data.read_bytes().replace(b'"layers"', b'"lzyers"'))
    name = "overwritten.example.test"
    registries = [UpstreamRegistry(name=name, url=registry.url)]
    with mirror(tmp_path, registries) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert answer.status_code == 502, answer.content[:300]
    assert oci_error_code(answer.content) == "MANIFEST_INVALID"
