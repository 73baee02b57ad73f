"""Issue [8]: a swarm outlives its coordinator. A supernode killed, restarted or stopped, or the host feeding the
largest layer killed, a few seconds into an 8-host pull storm costs seconds, not a storm.

Runs the benchmark's own harness (bench/disrupt.py: hosts in network namespaces on a bridge, tc-shaped links,
skopeo pulling through each host's Damselfly mirror) with a 48 MB image: each run is an undisturbed storm and a
disrupted one in the same network, and the disrupted one is judged against the undisturbed one of its run.
`damselfly bench --scenarios c --disrupt KIND` measures the same at 100 MB (docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.cluster import ClusterSettings
from bench.disrupt import KINDS, DisruptionBench, DisruptionSettings, describe
from bench.disrupt_report import MAX_TIME_RATIO, MAX_UPSTREAM_RATIO
from bench.results import DisruptionReport

HOSTS = 8
IMAGE_BYTES = 48_000_000
RUNS = 2
# The undisturbed 48 MB storm takes about 5 s: the fault lands while every layer is still moving, as 3 s does
# into the 100 MB storm of the benchmark.
DISRUPT_AT = 1.5
TOOLS = ("ip", "tc", "skopeo", "docker-registry", "umoci", "curl")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir for the module: the image is built once and served to every kind's runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the storm runs in network namespaces with tc-shaped links")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH (scripts/test.sh installs the Debian packages)")
    return tmp_path_factory.mktemp("disruptions")


def measure(kind: str, workdir: Path) -> DisruptionReport:
    lines: list[str] = []
    cluster = ClusterSettings(hosts=HOSTS, image_bytes=IMAGE_BYTES, scenarios=("c",), pull_timeout=180.0)
    faults = DisruptionSettings(kinds=(kind,), at=DISRUPT_AT, runs=RUNS)
    (report,) = DisruptionBench(cluster, faults, workdir, lines.append).run()
    print("\n".join(lines))  # shown by pytest when the test fails: every storm's figures and what was done
    return report


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.solo  # its time ratio must not measure the other tests' load
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_disrupted_storm_costs_little_more_than_an_undisturbed_one(kind: str, workdir: Path) -> None:
    report = measure(kind, workdir)
    assert len(report.runs) == RUNS
    # Every host not killed pulled the whole image right, and the fault was injected while the storm was on.
    assert not report.problems, report.problems
    for index, run in enumerate(report.runs, 1):
        event = run.disrupted.event
        assert event is not None and event.fired_at is not None
        hit = f"run {index}: {describe(run.disrupted)} (undisturbed: {describe(run.undisturbed)})"
        if kind == "feeder-kill":
            # The feeder was a pulling host: it is left out, the other seven all pulled.
            assert event.target.startswith("h") and event.target_peer, hit
            assert len(run.disrupted.host_seconds) == HOSTS - 1, hit
        else:
            assert event.target == "supernode" and len(run.disrupted.host_seconds) == HOSTS, hit
        if kind in ("supernode-restart", "supernode-stop"):
            assert event.restarted_at is not None, hit
        assert run.disrupted.failed_pulls == run.disrupted.digest_problems == 0, hit
        assert run.undisturbed.failed_pulls == run.undisturbed.digest_problems == 0, hit
        # The swarm, not the upstream, still fed the hosts: no storm of fallbacks. A killed feeder took with it
        # what it had fetched and not passed on (a piece or so of each blob it fed: 8 MB of a 48 MB image when it
        # fed two), which no design gets back: the bound is on what the upstream sent the others.
        assert run.disrupted.survivors_upstream_ratio <= MAX_UPSTREAM_RATIO, hit
        assert run.undisturbed.upstream_ratio <= MAX_UPSTREAM_RATIO, hit
        # Seconds, not a storm: the disrupted storm within 1.3x the undisturbed one of the same run.
        assert run.time_ratio <= MAX_TIME_RATIO, hit
