"""containerd 1.6 (`ctr images pull --hosts-dir`) through Damselfly: `?ns=` routing and `override_path` routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import MirrorFactory, UpstreamImages, damselfly_configure
from tests.support.containerd import ContainerdDaemon
from tests.support.mirror_host import Upstream
from tests.support.skopeo import unique_registry_name

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def pull_and_check(containerd: ContainerdDaemon, hosts_dir: Path, name: str, upstream: UpstreamImages) -> None:
    upstream.registry.reset_counts()
    containerd.ctr(["images", "pull", "--hosts-dir", str(hosts_dir), f"{name}/test/app:v1"])
    assert image_target(containerd, f"{name}/test/app:v1") == upstream.app.manifest_digest
    assert {digest for digest, _ in upstream.app.blobs} <= content_digests(containerd)
    # The name does not resolve: each blob came from the upstream once, through Damselfly.
    assert upstream.blob_bytes() == upstream.app.total_blob_bytes

    upstream.registry.reset_counts()
    containerd.ctr(["images", "pull", "--hosts-dir", str(hosts_dir), f"{name}/test/multi:v1"])
    assert image_target(containerd, f"{name}/test/multi:v1") == upstream.index.digest
    # ctr unpacked linux/amd64 from the index; arm64's blobs never left the upstream.
    assert {digest for digest, _ in upstream.amd64.blobs} <= content_digests(containerd)
    assert upstream.blob_bytes() == upstream.amd64.total_blob_bytes


def image_target(containerd: ContainerdDaemon, ref: str) -> str:
    for line in containerd.ctr(["images", "ls"]).stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == ref:
            return fields[2]
    raise AssertionError(f"{ref} not in ctr images ls")


def content_digests(containerd: ContainerdDaemon) -> set[str]:
    return {line.split()[0] for line in containerd.ctr(["content", "ls"]).stdout.splitlines()[1:] if line}


def test_ctr_with_ns_routing_from_damselfly_configure(
    tmp_path: Path, upstream: UpstreamImages, mirror_factory: MirrorFactory, containerd: ContainerdDaemon
) -> None:
    name = unique_registry_name("ctr-ns")
    mirror = mirror_factory([Upstream(name, upstream.registry.url)])
    hosts_dir = tmp_path / "certs.d"
    damselfly_configure("containerd", "--mirror", mirror.mirror_url, "--registry", name, "--path", str(hosts_dir))
    assert (hosts_dir / name / "hosts.toml").read_text().count(f'[host."{mirror.mirror_url}"]') == 1
    assert (hosts_dir / "_default" / "hosts.toml").exists()
    pull_and_check(containerd, hosts_dir, name, upstream)


def test_ctr_with_override_path_host_prefix_routing(
    tmp_path: Path, upstream: UpstreamImages, mirror_factory: MirrorFactory, containerd: ContainerdDaemon
) -> None:
    """`override_path` puts the registry in the path; containerd still adds `?ns=` for the same registry."""
    name = unique_registry_name("ctr-path")
    mirror = mirror_factory([Upstream(name, upstream.registry.url)])
    hosts_dir = tmp_path / "certs.d"
    (hosts_dir / name).mkdir(parents=True)
    (hosts_dir / name / "hosts.toml").write_text(
        f'server = "https://{name}"\n\n'
        f'[host."{mirror.mirror_url}/v2/{name}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        "  override_path = true\n"
    )
    pull_and_check(containerd, hosts_dir, name, upstream)
