"""`damselfly up`: a supernode and a peer in one process serve a pull on one host."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import httpx

from tests.support.cluster import CLEAN_ENV
from tests.support.identities import register_body, registered
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
        "--files-listen", f"127.0.0.1:{free_port()}",
        "--data-dir", str(tmp_path / "data"),
        "--supernode-data-dir", str(tmp_path / "supernode"), "--upstream", registry.url,
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


def test_up_makes_its_cluster_secret_once_and_its_supernode_requires_it(tmp_path: Path) -> None:
    # Everywhere but the mirror: `up`'s own listeners beyond loopback are allowed because it made a secret.
    mirror, supernode = free_port(), free_port()
    args = [
        sys.executable, "-m", "damselfly", "up", "--listen", f"127.0.0.1:{mirror}",
        "--supernode-listen", f"0.0.0.0:{supernode}", "--upload-listen", f"0.0.0.0:{free_port()}",
        "--files-listen", f"127.0.0.1:{free_port()}",
        "--data-dir", str(tmp_path / "data"),
        "--supernode-data-dir", str(tmp_path / "supernode"), "--upstream", "http://127.0.0.1:1",
    ]
    secret_path = tmp_path / "data" / "join-token"
    api = f"http://127.0.0.1:{supernode}/api/v1"
    seen = []
    for run in range(2):
        with ManagedProcess(args, log_path=tmp_path / f"up{run}.log", env=CLEAN_ENV,
                            ready_url=f"http://127.0.0.1:{mirror}/v2/", cwd=Path(__file__).resolve().parents[2]) as up:
            assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
            secret = secret_path.read_text().strip()
            seen.append(secret)
            with httpx.Client(timeout=5.0, trust_env=False) as client:
                assert client.get(f"{api}/peers").status_code == 401
                assert client.post(f"{api}/peers", json=register_body("tester", 1)).status_code == 401
                # With the secret a host joins, and as a registered host it may read the listing.
                token = {"X-Damselfly-Token": secret}
                answer = client.post(f"{api}/peers", json=register_body("tester", 1), headers=token)
                assert answer.status_code == 200, answer.text
                tester = registered("tester", answer.json())
                listed = client.get(f"{api}/peers", headers={**token, **tester.headers})
                assert listed.status_code == 200
                own = (tmp_path / "data" / "peer-id").read_text().strip()
                assert {p["peer_id"] for p in listed.json()["peers"]} == {own, tester.peer_id}
            text = up.log_text()
        assert secret not in text and "INSECURE" not in text
    assert seen[0] == seen[1] and len(seen[0]) >= 43  # made on the first start, reused on the second
