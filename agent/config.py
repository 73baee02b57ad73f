"""What the agent needs to know of this host: its registries and file origins (the proxy's settings, handed over by
damselfly/ so the agent imports nothing of the proxy) and its own pace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from upstream.origin import FileOrigin
from upstream.registry import UpstreamRegistry


@dataclass(frozen=True, slots=True)
class AgentConfig:
    # The upstream registries by the name clients use, and the one a reference without a host names.
    registries: Mapping[str, UpstreamRegistry] = field(default_factory=dict)
    default_registry: str = "docker.io"
    # The web servers a file job may fetch from: no other (as for `damselfly get`).
    file_origins: tuple[FileOrigin, ...] = ()
    # The directories a file job may write into (below them only); none: file jobs are refused.
    file_dirs: tuple[str, ...] = ()
    # The command a `runtime` job pulls with (`{reference}` in it is the image); empty: the first runtime found
    # (agent/runtime_pull.py).
    runtime_pull: tuple[str, ...] = ()
    # This host's mirror as a runtime on it reaches it (`127.0.0.1:65001`): docker pulls registries other than
    # Docker Hub from it by name (agent/runtime_commands.py).
    mirror_host: str = ""
    # How long one long-poll of the host's jobs is held at the supernode.
    poll_wait: float = 25.0
    # How often a running job's progress is posted at most (a state change is posted at once).
    progress_interval: float = 0.75
    # Blobs of one image job fetched at once (a job with a rate of its own fetches one at a time).
    parallel_blobs: int = 4
    # Finished jobs remembered, so one put again is reported, not redone.
    remembered_jobs: int = 1024
