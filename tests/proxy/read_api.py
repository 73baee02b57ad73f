"""Helpers of the read-API tests: the mirror in-process (the product's app and uvicorn) in front of real registries,
and tiny images pushed straight with the distribution API (a config blob and a manifest: no umoci, no skopeo).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from peer.config import PeerConfig
from peer.service import PeerService
from proxy.app import create_app
from proxy.config import ProxyConfig
from tests.faults.helpers import push_blob, sha256_digest
from tests.faults.servers import asgi_server
from upstream.registry import UpstreamRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@contextlib.contextmanager
def mirror(data_dir: Path, registries: Sequence[UpstreamRegistry], **settings: Any) -> Iterator[str]:
    """The mirror's base URL; the first registry is the default. `settings` are more `ProxyConfig` fields."""
    proxy_config = ProxyConfig(
        listen_host="127.0.0.1", listen_port=0, default_registry=registries[0].name,
        registries={registry.name: registry for registry in registries}, prefetch=False, **settings,
    )
    peer = PeerService(PeerConfig(data_dir=data_dir, upload_host="127.0.0.1", upload_port=0))
    with asgi_server(create_app(proxy_config, peer), cleanup=peer.close) as port:
        yield f"http://127.0.0.1:{port}"


def put_manifest(registry_url: str, repo: str, reference: str, manifest: dict[str, Any], media_type: str) -> str:
    """PUT a manifest; returns its digest."""
    body = json.dumps(manifest).encode()
    with httpx.Client(base_url=registry_url, trust_env=False, timeout=30) as client:
        answer = client.put(f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type})
    assert answer.status_code == 201, answer.text
    return sha256_digest(body)


def push_tiny_image(
    registry_url: str, repo: str, tags: Sequence[str], *, extra: dict[str, Any] | None = None
) -> tuple[str, int]:
    """An OCI image manifest with an empty config and no layers under each of `tags` (or by digest only when
    `tags` is empty); returns its digest and size. `extra` adds fields (`artifactType`, `subject`)."""
    config = push_blob(registry_url, repo, b"{}")
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
        **(extra or {}),
    }
    body = json.dumps(manifest).encode()
    for reference in tags or [sha256_digest(body)]:
        put_manifest(registry_url, repo, reference, manifest, OCI_MANIFEST)
    return sha256_digest(body), len(body)
