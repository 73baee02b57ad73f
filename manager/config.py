"""The manager's settings, each with its default in one place; those an operator may set say their flag and TOML key
(`[manager]`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.data_dir import default_data_dir
from core.setting import Setting, setting, setting_factory


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    listen_host: str = setting(
        "127.0.0.1",
        Setting("where the manager's API listens", key="listen", flag="--listen", kind="host_port",
                metavar="HOST:PORT", port_field="listen_port"),
    )
    # The port half of `listen`.
    listen_port: int = 8004
    database: str = setting(
        "",
        Setting("the platform's database: postgresql://USER@HOST:PORT/DB, or a SQLite file path (a URL with a "
                "password: --database-url-file)",
                key="database", flag="--database", metavar="URL", shown_default="DATA_DIR/manager.sqlite3"),
    )
    # Read into `database` by damselfly/settings.py: a URL that holds a password stays off the command line.
    database_url_secret: str = setting(
        "",
        Setting("file holding the database's URL, when it carries a password (mode 0600): instead of --database",
                key="database_url_file", flag="--database-url-file", kind="secret_file",
                env="DAMSELFLY_DATABASE_URL", metavar="FILE"),
    )
    data_dir: Path = setting_factory(
        lambda: default_data_dir("manager"),
        Setting("where the manager keeps its SQLite database", key="data_dir", flag="--data-dir", kind="path",
                metavar="DIR",
                shown_default="/var/lib/damselfly/manager as root, else $XDG_DATA_HOME/damselfly/manager"),
    )
    # A manager alone reads the hosts from these supernodes' API (manager/host_source.py); hosted, from its own.
    supernodes: str = setting(
        "",
        Setting("supernodes to read the hosts from, when the manager runs alone", key="supernodes",
                flag="--supernode", kind="urls", metavar="URL[,URL...]", shown_default="none: hosts as last stored"),
    )
    supernode_token: str = setting(
        "",
        Setting("file holding the supernodes' operators' token (mode 0600), with which a manager alone reads their "
                "hosts", key="supernode_token_file", flag="--supernode-token-file", kind="secret_file",
                env="DAMSELFLY_OPERATOR_TOKEN", metavar="FILE"),
    )
    # How long a manager alone waits for a supernode's answer before showing its hosts as last stored.
    supernode_timeout: float = 3.0
    # Host states, in heartbeat intervals since last heard (manager/hosts.py): healthy up to this, stale up to the
    # next, down beyond.
    healthy_beats: float = 2.0
    stale_beats: float = 6.0
    traffic_every: float = setting(
        60.0,
        Setting("seconds between two samples of the hosts' traffic counters, for the platform's analysis",
                key="traffic_every", flag="--traffic-every", kind="float", metavar="SECONDS"),
    )
    # How often a manager tells the supernodes the cordoned hosts again (manager/cordon_keeper.py): a supernode that
    # restarted holds them again within this.
    cordon_every: float = setting(
        10.0,
        Setting("seconds between two tellings of the cordoned hosts to the supernodes (a restarted one hears them "
                "again within this)", key="cordon_every", flag="--cordon-every", kind="float", metavar="SECONDS"),
    )
    # A live host's row is written at most this often (and when its address, labels, name or version change).
    host_write_every: float = 30.0
    # How often the task runner reads the jobs' progress and moves tasks along (manager/task_runner.py).
    task_round: float = 1.0
    # How long a manager holds the tasks it moves without renewing (every round): after it died, another manager
    # takes them over within this (manager/task_runner.py).
    task_lease: float = setting(
        15.0,
        Setting("seconds a manager holds the tasks it moves without renewing its lease; when it dies, another "
                "manager on the same database takes them over after this", key="task_lease", flag="--task-lease",
                kind="float", metavar="SECONDS"),
    )
    # Sessions from `POST /api/v1/login` last this long.
    session_ttl: float = 12 * 3600.0
    # Failed logins: this many in `login_window` seconds, per username or per client address, and the next waits.
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    login_window: float = 300.0
    # The largest request body the API reads (a user, a token request: a few hundred bytes).
    max_body: int = 64 * 1024
