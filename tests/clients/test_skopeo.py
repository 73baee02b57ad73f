"""skopeo 1.9.3 through Damselfly: a registries.conf.d drop-in with host-prefix routing (it sends no `ns`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import MirrorFactory, UpstreamImages
from tests.support.mirror_host import Upstream
from tests.support.skopeo import mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def test_skopeo_pulls_an_image_and_a_multi_arch_index_through_the_mirror(
    tmp_path: Path, upstream: UpstreamImages, mirror_factory: MirrorFactory
) -> None:
    name = unique_registry_name("skopeo")
    mirror = mirror_factory([Upstream(name, upstream.registry.url)])
    with mirror_dropin(name, f"{mirror.mirror_host}/{name}"):
        upstream.registry.reset_counts()
        skopeo_copy(f"{name}/test/app:v1", tmp_path / "app")
        verify_dir_blobs(tmp_path / "app", upstream.app)
        # The name does not resolve: every byte came from the upstream through Damselfly, each blob once.
        assert upstream.blob_bytes() == upstream.app.total_blob_bytes

        upstream.registry.reset_counts()
        skopeo_copy(f"{name}/test/multi:v1", tmp_path / "multi", extra_args=["--override-arch", "arm64"])
        # skopeo picked arm64 out of the index the mirror passed through, and only arm64's blobs moved.
        verify_dir_blobs(tmp_path / "multi", upstream.arm64)
        assert upstream.blob_bytes() == upstream.arm64.total_blob_bytes
        assert "/v2/test/multi/manifests/v1" in upstream.manifest_gets()
