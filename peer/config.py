"""Peer settings, each with its default in one place; those an operator may set say their flag and TOML key
(`[peer]`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.data_dir import default_data_dir
from core.setting import Setting, setting, setting_factory
from upstream.config import UpstreamConfig


@dataclass(frozen=True, slots=True)
class PeerConfig:
    data_dir: Path = setting_factory(
        default_data_dir,
        Setting("blob and piece store", key="data_dir", flag="--data-dir", kind="path", metavar="DIR",
                shown_default="/var/lib/damselfly as root, else $XDG_DATA_HOME/damselfly"),
    )
    # Several supernode processes share the swarms out by digest (supernode/shards.py): with a directory in Redis
    # (supernode/directory.py) any one of them leads to all; without, give every peer the same list.
    supernode_url: str = setting(
        "",
        Setting("supernode URLs, comma-separated (in TOML also a list); several share the swarms out by digest; "
                "with --redis on the supernodes, any one of them leads to all",
                key="supernode", flag="--supernode", kind="urls", metavar="URL[,URL...]",
                shown_default="none: every blob comes from the upstream"),
    )
    # An https supernode: the CA its certificate is checked against, and for mutual TLS this host's certificate,
    # whose common name is then its peer id (supernode/identity.py).
    supernode_ca: str = setting(
        "", Setting("CA file (PEM) an https supernode's certificate is checked against, instead of the system's",
                    key="supernode_ca", flag="--supernode-ca", metavar="FILE"),
    )
    tls_client_cert: str = setting(
        "", Setting("this host's client certificate for a supernode under mutual TLS (PEM file); its common name is "
                    "the host's peer id", key="tls_client_cert", flag="--tls-client-cert", metavar="FILE"),
    )
    tls_client_key: str = setting(
        "", Setting("the client certificate's private key (PEM file)", key="tls_client_key", flag="--tls-client-key",
                    metavar="FILE"),
    )
    upload_host: str = setting(
        "0.0.0.0",
        Setting("the piece server other peers fetch from", key="upload_listen", flag="--upload-listen",
                kind="host_port", metavar="HOST:PORT", port_field="upload_port"),
    )
    # The port half of `upload_listen`; 0 takes a free port (the upload server reports which).
    upload_port: int = 65002
    advertise_host: str = setting(
        "",
        Setting("the IP address other peers dial (the supernode accepts it if it sees the peer there, or in its "
                "--peer-networks)", key="advertise", flag="--advertise", metavar="ADDRESS",
                shown_default="as the supernode sees the peer"),
    )
    join_token: str = setting(
        "",
        Setting("file holding the cluster's secret (mode 0600), presented to the supernode and to other peers' upload "
                "servers; never on the command line", key="join_token_file", flag="--join-token-file",
                kind="secret_file", env="DAMSELFLY_JOIN_TOKEN", metavar="FILE"),
    )
    # The platform's: this host joins the cluster whose join token it is (manager/clusters.py); the supernode keeps
    # only its sha256.
    cluster_token: str = setting(
        "",
        Setting("file holding a platform cluster's join token (mode 0600): the host joins that cluster; never on the "
                "command line", key="cluster_token_file", flag="--cluster-token-file", kind="secret_file",
                env="DAMSELFLY_CLUSTER_TOKEN", metavar="FILE"),
    )
    insecure_open_cluster: bool = setting(
        False,
        Setting("serve pieces beyond loopback without a secret: anyone who reaches the upload port may fetch them",
                key="insecure_open_cluster", flag="--insecure-open-cluster", kind="enable"),
    )
    # Parents in the same zone or rack are preferred (supernode/scheduler.py).
    labels: dict[str, str] = setting(
        {},
        Setting("locality labels (zone, rack); the flag is repeated, and merged over the TOML table", key="labels",
                flag="--label", kind="labels", metavar="KEY=VALUE"),
    )
    # The agent (agent/): runs the jobs the platform gives this host through its supernode.
    agent: bool = setting(
        True,
        Setting("run the distribution jobs the platform gives this host through the supernode (agent/)", key="agent",
                flag="--no-agent", kind="disable"),
    )
    # Where the platform's file jobs may write on this host. The daemon runs as root: without this bound, anyone
    # allowed to run a task could write any file on every host (a cron job, a key); so none by default.
    file_job_dirs: str = setting(
        "",
        Setting("comma-separated absolute directories the platform's file jobs may write into, below them only "
                "(none: file jobs are refused)", key="file_job_dirs", flag="--file-job-dirs", metavar="DIR[,DIR...]"),
    )
    # How a `runtime` job makes the host's container runtime pull (it must pull through this host's mirror).
    runtime_pull: str = setting(
        "",
        Setting("the command a runtime-mode job pulls with, {reference} for the image, e.g. 'podman pull "
                "{reference}' (default: docker, containerd's ctr or podman, the first this host has)",
                key="runtime_pull", flag="--runtime-pull", metavar="COMMAND"),
    )
    # Pieces fetched from parents at once, and per parent.
    max_inflight: int = 8
    max_inflight_per_parent: int = 3
    # Pieces fetched from parents at once across all of the host's downloads: each is held in memory until it
    # is verified and written, so this bounds the memory of a host pulling many blobs at once (16 x 4 MiB).
    max_inflight_host: int = 16
    # How long a parent may hold a request for a piece it does not have yet.
    piece_wait: float = 15.0
    # Without any progress for this long, the swarm is given up and the upstream serves the rest.
    stall_timeout: float = 20.0
    # Network timeouts towards peers and the supernode: connecting, and the longest silence while reading.
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    register_timeout: float = setting(
        15.0,
        Setting("seconds to keep trying the supernode at start-up before giving up", key="supernode_timeout",
                flag="--supernode-timeout", kind="float", metavar="SECONDS"),
    )
    # Per-host rate limits in bytes per second, 0 for none, so the swarm never starves the host's own traffic.
    upload_rate: float = setting(
        0.0, Setting("limit for serving pieces to peers (100Mbit, 50MB)", key="upload_rate", flag="--upload-rate",
                     kind="rate", metavar="RATE"),
    )
    download_rate: float = setting(
        0.0, Setting("limit for fetching pieces from peers", key="download_rate", flag="--download-rate",
                     kind="rate", metavar="RATE"),
    )
    source_rate: float = setting(
        0.0, Setting("limit for fetching from the upstream", key="source_rate", flag="--source-rate", kind="rate",
                     metavar="RATE"),
    )
    # Disk quota of the store in bytes, 0 for none (peer/quota.py). Starting a blob that would take the store past
    # `disk_high_watermark` (a fraction of the quota) evicts least-recently-used blobs nobody is reading until it
    # is back at `disk_low_watermark`; a blob that still does not fit is refused with HTTP 507.
    disk_quota: int = setting(
        0, Setting("most the store may hold (10GiB, 500GB)", key="disk_quota", flag="--disk-quota", kind="size",
                   metavar="SIZE"),
    )
    disk_high_watermark: float = setting(
        0.9, Setting("fraction of the quota that starts eviction", key="disk_high_watermark",
                     flag="--disk-high-watermark", kind="float", metavar="FRACTION"),
    )
    disk_low_watermark: float = setting(
        0.8, Setting("fraction of the quota eviction goes down to", key="disk_low_watermark",
                     flag="--disk-low-watermark", kind="float", metavar="FRACTION"),
    )
    # How the upstream registry is reached: attempts, backoff, timeouts (upstream/config.py). The registry client
    # retries a failed request; the download resumes a body that broke off, with the same attempts and backoff.
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)

    @property
    def upstream_attempts(self) -> int:
        """Tries of the download's loop that resumes broken bodies: the registry client's number of attempts."""
        return self.upstream.attempts

    @property
    def upstream_backoff(self) -> float:
        return self.upstream.backoff
