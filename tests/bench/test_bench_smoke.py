"""Smoke test of the benchmark commands: `damselfly bench --quick` (root) and a small `damselfly simulate`.

Checks that the commands run end to end, that their results are well-formed, that every pulled blob had the right
digest, that the generated sections land in the report without touching hand-written text, and that the run
leaves no network namespace behind. Performance figures are not asserted here: the machine may be busy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAND_WRITTEN = "Hand-written notes stay where they are.\n"


def damselfly(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    return subprocess.run(
        [sys.executable, "-m", "damselfly", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def report_file(tmp_path: Path) -> Path:
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n" + HAND_WRITTEN)
    return output


@pytest.mark.root
@pytest.mark.slow
def test_bench_quick_measures_three_scenarios_and_loopback_with_right_digests(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("damselfly bench needs root: it creates network namespaces and shapes links with tc")
    for tool in ("ip", "tc", "docker-registry", "skopeo", "umoci", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH (scripts/test.sh installs the Debian packages)")
    output = report_file(tmp_path)
    result = damselfly(
        "bench", "--quick", "--workdir", str(tmp_path / "work"), "--output", str(output),
        "--json", str(tmp_path / "results.json"), timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())

    cluster = results["cluster"]
    assert [s["key"] for s in cluster["scenarios"]] == ["a", "b", "c"]
    for scenario in cluster["scenarios"]:
        assert scenario["digests_ok"], scenario["failures"]
        assert len(scenario["host_seconds"]) == cluster["hosts"] == 3
        assert scenario["upstream_ratio"] >= 0.99  # every byte came from the upstream at least once
        assert scenario["time_ratio"] > 0 and scenario["p50"] <= scenario["all_done"]
    damselfly_run = cluster["scenarios"][2]
    assert damselfly_run["extra"]["bytes_from_peers"] > 0, "the hosts shared nothing"
    assert cluster["network"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                    timeout=10).stdout

    loopback = results["loopback"]
    figures = {c["what"]: c for c in loopback["comparisons"]}
    assert len(figures) == 5
    assert all(c["damselfly"] > 0 and c["baseline"] > 0 for c in figures.values())
    # The source rate limit holds: the cold blob came no faster than --source-rate allows.
    assert figures["cold blob with --source-rate 100MB"]["target_met"], figures["cold blob with --source-rate 100MB"]

    text = output.read_text()
    assert HAND_WRITTEN in text
    for section in ("bench-cluster-3", "bench-loopback"):
        assert text.count(f"<!-- generated: {section} begin -->") == 1
        assert text.count(f"<!-- generated: {section} end -->") == 1
    assert "| (c) Damselfly |" in text


def test_simulate_reports_decisions_and_memory(tmp_path: Path) -> None:
    output = report_file(tmp_path)
    result = damselfly(
        "simulate", "--hosts", "300", "--swarms", "6", "--layers", "3", "--window", "5", "--profile",
        "--output", str(output), "--json", str(tmp_path / "sim.json"), timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sim: dict[str, Any] = json.loads((tmp_path / "sim.json").read_text())["simulate"]
    assert sim["hosts_done"] + sim["hosts_dead"] == 300
    assert sim["upstream_ratio"] >= 1.0
    assert sim["calls"]["join"]["count"] == sim["downloads"] == 300 * 3
    assert sim["decisions_per_second"] > 0 and sim["busy_share"] > 0
    assert sim["memory"]["per_peer"] > 0 and sim["memory"]["per_member"] > 0
    assert sim["profile"], "cProfile rows missing"
    text = output.read_text()
    assert HAND_WRITTEN in text and text.count("<!-- generated: simulate-profile begin -->") == 1


def test_supernode_load_answers_every_request_and_delivers_every_digest(tmp_path: Path) -> None:
    output = report_file(tmp_path)
    result = damselfly(
        "bench", "--scenarios", "supernode", "--quick", "--workdir", str(tmp_path / "work"), "--output", str(output),
        "--json", str(tmp_path / "sn.json"), timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sn: dict[str, Any] = json.loads((tmp_path / "sn.json").read_text())["supernode"]
    load = sn["settings"]["load"]
    assert sn["errors"] == 0 and sn["undelivered"] == 0
    (sample,) = sn["samples"]
    phases = {p["name"]: p for p in sample["phases"]}
    assert list(phases) == ["register", "join", "heartbeat", "report", "view", "wake", "play"]
    # Every host registered and joined every swarm it was given, each request answered once.
    assert phases["register"]["requests"]["register"]["count"] == load["hosts"]
    assert phases["join"]["requests"]["join"]["count"] == load["hosts"] * load["layers"]
    for name in ("heartbeat", "report", "view"):
        assert phases[name]["requests"][name]["count"] > 0
    # The wake phase: every child of every swarm learned every digest from a long-poll, after its report.
    wake = phases["wake"]
    children = load["hosts"] * load["layers"] - load["swarms"]
    assert wake["expected"] == children * load["wake_digests"] == wake["delivered"] == wake["wake"]["count"]
    assert 0 < wake["wake"]["p50_ms"] <= wake["wake"]["p99_ms"]
    assert wake["requests"]["digests"]["count"] == load["swarms"] * load["wake_digests"]
    # The play phase: the whole protocol, every child ends with every digest.
    play = phases["play"]
    assert play["delivered"] == play["expected"] > 0
    assert {"join", "report", "digests", "long-poll", "heartbeat"} <= set(play["requests"])
    assert sum(p["supernode_cpu"] for p in phases.values()) > 0
    # What the simulated cluster needs, priced at what each kind of request cost here.
    assert set(sn["cluster_rates"]) == {"register", "join", "heartbeat", "report", "long-poll"}
    assert all(rate > 0 for rate in sn["cluster_rates"].values()) and sn["cluster_cpu"] > 0
    text = output.read_text()
    assert HAND_WRITTEN in text and text.count("<!-- generated: bench-supernode begin -->") == 1
    assert "| **all** |" in text


@pytest.mark.root
@pytest.mark.slow
def test_bench_quick_file_storm_sends_the_file_about_once_and_every_host_gets_it_right(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("damselfly bench needs root: it creates network namespaces and shapes links with tc")
    for tool in ("ip", "tc", "nginx", "curl"):
        if shutil.which(tool) is None and not (tool == "nginx" and Path("/usr/sbin/nginx").exists()):
            pytest.skip(f"{tool} is not on PATH (scripts/test.sh installs the Debian packages)")
    output = report_file(tmp_path)
    result = damselfly(
        "bench", "--quick", "--scenarios", "files", "--workdir", str(tmp_path / "work"), "--output", str(output),
        "--json", str(tmp_path / "results.json"), timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())["files"]
    assert [s["mode"] for s in files["storms"]] == ["direct", "damselfly"]
    direct, ours = files["storms"]
    for storm in (direct, ours):
        assert storm["files_ok"], storm["failures"]
        assert len(storm["host_seconds"]) == files["hosts"] == 3
    # Direct, the origin sends every host its copy; through the swarm about one copy in all.
    assert direct["origin_bytes"] == 3 * files["file_bytes"]
    assert files["file_bytes"] <= ours["origin_bytes"] <= 1.1 * files["file_bytes"]
    text = output.read_text()
    assert HAND_WRITTEN in text and text.count("<!-- generated: bench-files-3 begin -->") == 1
    assert "| Damselfly (`damselfly get`) |" in text
