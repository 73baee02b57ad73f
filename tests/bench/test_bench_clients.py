"""Pull storms with the clients that fetch layers in parallel: `damselfly bench --quick --client podman|containerd`.

One storm direct from the upstream and one through Damselfly (a made-up registry name whose mirror entry is each
host's peer, so a client that went around the mirror fails), each on 3 hosts with a 6 MB image. Asserted: every
host stored every blob of the image (podman: the image's id and digest; containerd: each blob of its content store
hashed), no client request reached the upstream in the Damselfly storm, the image came from the upstream once, and
the peers' and the supernode's CPU per GB received and served is measured and positive. Figures are not asserted:
the machine may be busy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_bench_smoke import HAND_WRITTEN, damselfly, report_file


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("client", ["podman", "containerd"])
def test_a_storm_with_the_client_gets_every_digest_everywhere_and_prices_the_cpu(tmp_path: Path, client: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("damselfly bench needs root: it creates network namespaces and shapes links with tc")
    tools = {"podman": ("podman",), "containerd": ("containerd", "ctr")}[client]
    for tool in ("ip", "tc", "docker-registry", "umoci", "skopeo", "curl", *tools):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH (scripts/test.sh installs the Debian packages)")
    output = report_file(tmp_path)
    result = damselfly(
        "bench", "--quick", "--scenarios", "a,c", "--client", client, "--workdir", str(tmp_path / "work"),
        "--output", str(output), "--json", str(tmp_path / "results.json"), timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cluster: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())["cluster"]
    assert cluster["client"] == client and cluster["mirror_mode"] == "entry"
    direct, ours = cluster["scenarios"]
    assert (direct["key"], ours["key"]) == ("a", "c")
    for storm in (direct, ours):
        assert storm["client"] == client
        assert storm["digests_ok"], storm["failures"]
        assert storm["failed_pulls"] == storm["digest_problems"] == 0
        assert len(storm["host_seconds"]) == cluster["hosts"] == 3
    assert ours["mirror_mode"] == "entry"
    assert "client_requests_at_upstream" not in ours["extra"], ours["failures"]
    assert direct["upstream_ratio"] >= 2.99  # every host fetched its own copy
    assert 0.99 <= ours["upstream_ratio"] <= 1.05
    assert ours["extra"]["bytes_from_peers"] > 0, "the hosts shared nothing"

    cpu = {row["kind"]: row for row in ours["cpu"]}
    assert set(cpu) == {"peer", "supernode"}
    everyone = cluster["hosts"] * cluster["image_bytes"]
    for row in cpu.values():
        # Each host's peer received the whole image (from the upstream or the others) and served it to its client.
        assert row["bytes_received"] >= everyone and row["bytes_served"] >= everyone
        assert row["cpu_seconds"] > 0 and row["per_gb_received"] > 0 and row["per_gb_served"] > 0
    assert direct["cpu"] == []

    text = output.read_text()
    assert HAND_WRITTEN in text
    assert text.count(f"<!-- generated: bench-cluster-3-{client} begin -->") == 1
    assert "| (c) Damselfly | peer |" in text and "| (c) Damselfly | supernode |" in text
