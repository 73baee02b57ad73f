"""podman 4.3.1 through Damselfly, configured by `damselfly configure podman` (a registries.conf.d drop-in)."""

from __future__ import annotations

import pytest

from tests.clients.conftest import MirrorFactory, UpstreamImages, damselfly_configure
from tests.support.mirror_host import Upstream
from tests.support.podman import Podman
from tests.support.skopeo import unique_registry_name

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def test_podman_pulls_an_image_and_a_multi_arch_index_through_the_mirror(
    upstream: UpstreamImages, mirror_factory: MirrorFactory, podman: Podman
) -> None:
    name = unique_registry_name("podman")
    mirror = mirror_factory([Upstream(name, upstream.registry.url)])
    conf = podman.registries_conf
    # The drop-in `configure` writes is a complete registries.conf: podman reads it as its only config here.
    damselfly_configure("podman", "--mirror", mirror.mirror_url, "--registry", name, "--path", str(conf))
    assert f'location = "{mirror.mirror_host}/{name}"' in conf.read_text()

    upstream.registry.reset_counts()
    podman.run(["pull", f"{name}/test/app:v1"])
    assert podman.image_id(f"{name}/test/app:v1") == upstream.app.config[0].removeprefix("sha256:")
    assert upstream.blob_bytes() == upstream.app.total_blob_bytes

    upstream.registry.reset_counts()
    podman.run(["pull", f"{name}/test/multi:v1"])
    # podman chose linux/amd64 from the index; arm64's blobs never left the upstream.
    assert podman.image_id(f"{name}/test/multi:v1") == upstream.amd64.config[0].removeprefix("sha256:")
    assert upstream.blob_bytes() == upstream.amd64.total_blob_bytes
    assert "/v2/test/multi/manifests/v1" in upstream.manifest_gets()
