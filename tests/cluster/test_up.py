"""`damselfly up`: a supernode and a peer in one process serve a pull on one host."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.cluster import CLEAN_ENV
from tests.support.images import BuiltImage, push_image
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer
from tests.support.skopeo import skopeo_copy, verify_dir_blobs


def test_up_serves_a_pull_and_answers_on_both_ports(
    tmp_path: Path, registry: RegistryServer, small_image: BuiltImage
) -> None:
    pushed = push_image(small_image, registry.url, "test/up", "v1")
    registry.reset_counts()
    mirror, supernode, upload = free_port(), free_port(), free_port()
    args = [
        sys.executable, "-m", "damselfly", "up", "--listen", f"127.0.0.1:{mirror}",
        "--supernode-listen", f"127.0.0.1:{supernode}", "--upload-listen", f"127.0.0.1:{upload}",
        "--data-dir", str(tmp_path / "data"), "--upstream", registry.url,
    ]
    log = tmp_path / "up.log"
    with ManagedProcess(args, log_path=log, env=CLEAN_ENV, ready_url=f"http://127.0.0.1:{mirror}/v2/",
                        cwd=Path(__file__).resolve().parents[2]) as up:
        skopeo_copy(f"127.0.0.1:{mirror}/test/up:v1", tmp_path / "out")
        text = up.log_text()
    verify_dir_blobs(tmp_path / "out", pushed)
    assert f"listening on http://127.0.0.1:{supernode}" in text
    assert f"registry mirror on http://127.0.0.1:{mirror}" in text
    assert registry.served_bytes(method="GET", path_contains="/blobs/") == pushed.total_blob_bytes
