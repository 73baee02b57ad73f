"""Supernode settings, each with its default in one place; those an operator may set say their flag and TOML key
(`[supernode]`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from core.data_dir import default_data_dir
from core.setting import Setting, setting, setting_factory


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    # Parents a child is given; more spreads load, fewer keeps connections down.
    parents_per_child: int = 4
    # Children one peer serves at once; the feeder's own cap is lower so its upstream pull is not starved.
    peer_fanout: int = 6
    feeder_fanout: int = 4
    # Swarms larger than this pick parents from a random sample of this many members instead of all of them.
    candidate_sample: int = 64
    # A peer that has not sent a heartbeat for this long is dead: it is taken out of every swarm.
    peer_ttl: float = 8.0
    # How often peers are told (in the register answer) to heartbeat; well under `peer_ttl`.
    heartbeat_interval: float = 2.0
    # Swarms nobody has touched for this long are forgotten.
    swarm_ttl: float = 3600.0
    # After a restart, how long a swarm rebuilt from its members' joins waits for the member that was its feeder
    # before another is made the feeder: a little over the peers' heartbeat interval, in which they all register.
    rebuild_grace: float = 3.0
    # A host found sending bad bytes in this many different swarms is quarantined (supernode/suspects.py).
    quarantine_after: int = 3


@dataclass(frozen=True, slots=True)
class SupernodeConfig:
    listen_host: str = setting(
        "0.0.0.0",
        Setting("where the supernode API listens", key="listen", flag="--listen", kind="host_port",
                metavar="HOST:PORT", port_field="listen_port"),
    )
    # The port half of `listen`.
    listen_port: int = 8002
    # Empty disables the check: allowed only on loopback, or with `insecure_open_cluster` (damselfly/cluster_secret.py).
    join_token: str = setting(
        "",
        Setting("file holding the cluster's secret (mode 0600): peers present it to join, and to each other's upload "
                "servers; never on the command line", key="join_token_file", flag="--join-token-file",
                kind="secret_file", env="DAMSELFLY_JOIN_TOKEN", metavar="FILE"),
    )
    insecure_open_cluster: bool = setting(
        False,
        Setting("listen beyond loopback without a secret: anyone who reaches the supernode may join the cluster",
                key="insecure_open_cluster", flag="--insecure-open-cluster", kind="enable"),
    )
    # Operators' access to the listings, the quarantine and the jobs (supernode/server.py); empty: none.
    operator_token: str = setting(
        "",
        Setting("file holding the operators' token (mode 0600): lists hosts and swarms, clears quarantined hosts, "
                "puts the platform's jobs; sent as `Authorization: Bearer TOKEN`", key="operator_token_file",
                flag="--operator-token-file",
                kind="secret_file", env="DAMSELFLY_OPERATOR_TOKEN", metavar="FILE"),
    )
    # HTTPS, and with `client_ca` mutual TLS: a host's peer id is then its certificate's common name.
    tls_cert: str = setting(
        "", Setting("serve the supernode API over https with this certificate (PEM file)", key="tls_cert",
                    flag="--tls-cert", metavar="FILE"),
    )
    tls_key: str = setting(
        "", Setting("the certificate's private key (PEM file)", key="tls_key", flag="--tls-key", metavar="FILE"),
    )
    client_ca: str = setting(
        "",
        Setting("mutual TLS: every peer shows a client certificate this CA signed (PEM file), and its peer id is the "
                "certificate's common name", key="client_ca", flag="--client-ca", metavar="FILE"),
    )
    # Where a peer's advertised address may be (supernode/addresses.py); empty: only where the supernode sees it.
    peer_networks: tuple[str, ...] = setting(
        (),
        Setting("CIDRs a peer may advertise an address in, beyond the one the supernode sees it at",
                key="peer_networks", flag="--peer-networks", kind="networks", metavar="CIDR[,CIDR...]",
                shown_default="only the address the supernode sees the peer at"),
    )
    # What the supernode keeps on disk: the platform's SQLite database, when it hosts the platform.
    data_dir: Path = setting_factory(
        lambda: default_data_dir("supernode"),
        Setting("where the supernode keeps what it must (the platform's SQLite database)", key="data_dir",
                flag="--data-dir", kind="path", metavar="DIR",
                shown_default="/var/lib/damselfly/supernode as root, else $XDG_DATA_HOME/damselfly/supernode"),
    )
    # The platform (manager/, wired in damselfly/hosting.py) on the supernode's own port; the supernode never
    # imports it, and swarms are coordinated whether it is up or not.
    manager: bool = setting(
        True,
        Setting("do not host the platform's API (users, tokens, audit: docs/platform.md) on the supernode's port",
                key="manager", flag="--no-manager", kind="disable"),
    )
    # 0: the scheduler's own (`SchedulerConfig.heartbeat_interval`). Tests of the platform's host states set it short.
    heartbeat_interval: float = setting(
        0.0,
        Setting("seconds between a peer's heartbeats (peers are told at register); a peer unheard for four of them is "
                "gone", key="heartbeat_interval", flag="--heartbeat-interval", kind="float", metavar="SECONDS",
                shown_default="2"),
    )
    # Several supernodes find each other through Redis (supernode/directory.py); none: a fixed list in the peers.
    redis_url: str = setting(
        "",
        Setting("announce this supernode in Redis and learn the others there (redis://HOST:PORT/DB): peers given any "
                "one supernode find them all", key="redis", flag="--redis", metavar="URL"),
    )
    redis_sentinel: str = setting(
        "",
        Setting("the Redis of the directory through these Sentinels instead (a promoted replica is found after a "
                "failover)", key="redis_sentinel", flag="--redis-sentinel", metavar="HOST:PORT[,HOST:PORT...]"),
    )
    redis_master: str = setting(
        "", Setting("the master's name the Sentinels watch", key="redis_master", flag="--redis-master", metavar="NAME"),
    )
    advertise_url: str = setting(
        "",
        Setting("the URL peers reach this supernode at, as announced in the directory", key="advertise_url",
                flag="--advertise-url", metavar="URL", shown_default="the scheme and --listen address"),
    )
    # Longest a view request waits for news before answering with what there is.
    view_wait: float = 10.0
    # The swarm scheduler's tuning.
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)

    @property
    def directory(self) -> bool:
        """Whether this supernode keeps the directory in Redis (supernode/directory.py)."""
        return bool(self.redis_url or self.redis_sentinel)

    def scheduler_config(self) -> SchedulerConfig:
        """The scheduler's tuning with the operator's heartbeat interval, its peers' time to live kept in step."""
        if not self.heartbeat_interval > 0:
            return self.scheduler
        ratio = self.scheduler.peer_ttl / self.scheduler.heartbeat_interval
        return replace(self.scheduler, heartbeat_interval=self.heartbeat_interval,
                       peer_ttl=self.heartbeat_interval * ratio)
