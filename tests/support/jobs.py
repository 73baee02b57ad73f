"""Jobs put at a real supernode as the platform puts them (the operators' token), their progress read back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from peer.identity_file import load_identity
from supernode import routes
from supernode.jobs import Job, JobProgress, ProgressList
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.identities import operator_headers


def host_id(peer: PeerProcess) -> str:
    return load_identity(peer.data_dir).peer_id


def put(cluster: DamselflyCluster, job: Job, supernode_url: str = "") -> None:
    url = (supernode_url or cluster.supernode_url) + routes.PUT_JOB.url(job_id=job.job_id)
    response = httpx.put(url, json=job.to_json(), headers=operator_headers(), timeout=10.0, trust_env=False)
    assert response.status_code < 300, response.text


def cancel(cluster: DamselflyCluster, job_id: str) -> None:
    url = cluster.supernode_url + routes.CANCEL_JOB.url(job_id=job_id)
    response = httpx.delete(url, headers=operator_headers(), timeout=10.0, trust_env=False)
    assert response.status_code < 300, response.text


def progress(cluster: DamselflyCluster, job_id: str, supernode_url: str = "") -> JobProgress | None:
    url = (supernode_url or cluster.supernode_url) + routes.LIST_JOB_PROGRESS.url()
    response = httpx.get(url, headers=operator_headers(), timeout=10.0, trust_env=False)
    response.raise_for_status()
    found = [p for p in ProgressList.parse(response.json()).progress if p.job_id == job_id]
    return found[0] if found else None


def wait_for(
    cluster: DamselflyCluster, job_id: str, done: Callable[[JobProgress], bool], timeout: float = 60.0,
    supernode_url: str = "",
) -> JobProgress:
    deadline = time.monotonic() + timeout
    while True:
        seen = progress(cluster, job_id, supernode_url)
        if seen is not None and done(seen):
            return seen
        assert time.monotonic() < deadline, f"job {job_id} is at {seen}"
        time.sleep(0.2)


def final(cluster: DamselflyCluster, job_id: str, timeout: float = 60.0, supernode_url: str = "") -> JobProgress:
    return wait_for(cluster, job_id, lambda p: p.final, timeout, supernode_url)


def stored(peer: PeerProcess, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return peer.data_dir / "blobs" / algorithm / hex_
