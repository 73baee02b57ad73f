"""Blob downloads redirected by the upstream (307 to object storage) are followed, without the credentials, when
the registry's `redirect_networks` admit the object store's address.

The real registry redirects (its `redirect` storage middleware, as with S3 or a CDN in front); the object
store is a small server on the registry's storage directory that counts what it sends and records headers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import ALICE, MirrorFactory, UpstreamImages
from tests.support.mirror_host import Upstream
from tests.support.object_store import ObjectStore
from tests.support.registry import RegistryServer
from tests.support.skopeo import mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def test_blob_redirects_are_followed_and_credentials_stay_with_the_registry(
    tmp_path: Path, upstream: UpstreamImages, mirror_factory: MirrorFactory
) -> None:
    name = unique_registry_name("redirect")
    with ObjectStore(upstream.registry.storage_dir) as store:
        config = {
            "storage": {"filesystem": {"rootdirectory": str(upstream.registry.storage_dir)}},
            **store.registry_middleware(),
        }
        with RegistryServer(tmp_path / "redirecting", htpasswd=ALICE, extra_config=config) as registry:
            # The object store is on loopback, like the registry but on another port: a private address the
            # registry's redirects may lead to only because its settings say so.
            mirror = mirror_factory([Upstream(name, registry.url, *ALICE, redirect_networks=("127.0.0.0/8",))])
            registry.reset_counts()
            with mirror_dropin(name, f"{mirror.mirror_host}/{name}"):
                skopeo_copy(f"{name}/test/app:v1", tmp_path / "app")
            verify_dir_blobs(tmp_path / "app", upstream.app)
            redirects = [r for r in registry.requests() if "/blobs/" in r["uri"]]
            registry_bytes = registry.served_bytes()

    assert redirects and all(r["status"] == 307 for r in redirects)
    # The blobs came from the object store, each once; the registry only sent redirects.
    assert store.served_bytes() == upstream.app.total_blob_bytes
    assert registry_bytes < 200 * len(redirects)
    # The registry's credentials never followed a redirect to another origin.
    assert store.recorded() and all(r.authorization is None for r in store.recorded())
