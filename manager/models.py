"""The tables: users, API tokens, sessions (migration 0001), the audit log (0002), hosts and clusters (0003), the
hosts' traffic and the hosts' cluster token hashes (0004), distribution tasks, their hosts and events, and registry
secrets (0005).

Times are seconds since the epoch (a float), the same in SQLite and PostgreSQL; tokens and users' passwords are
stored only as hashes; a registry secret's password, which must be handed to hosts, is encrypted
(manager/secret_box.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # argon2id, as argon2-cffi writes it (manager/passwords.py).
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(default=False)
    # The clusters the role holds in; empty: all of them (manager/scopes.py).
    clusters: Mapped[list[str]] = mapped_column(JSON, default=list)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    # sha256 of the token, hex (manager/tokens.py); the token itself is shown once, at creation.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LoginSession(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(default=False)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    # The user's name ("" when nobody was authenticated) and how: session, token #id, or anonymous.
    actor: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    # ok, refused (permission), failed (bad input, conflict, wrong password).
    result: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    client: Mapped[str] = mapped_column(String(64), default="")


class Host(Base):
    """What the platform has seen of a host (manager/hosts.py): kept so that a host gone from the supernodes is still
    listed, as down, with its last-seen time; and the operator's cordon."""

    __tablename__ = "hosts"

    # The row's number orders the listing and its pages; `host_id` is the peer id the supernode knows it by.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host_id: Mapped[str] = mapped_column(String(255), unique=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    url: Mapped[str] = mapped_column(String(512), default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(255), default="")
    disk_used: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_total: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_rate: Mapped[int] = mapped_column(BigInteger, default=0)
    download_rate: Mapped[int] = mapped_column(BigInteger, default=0)
    swarms: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    cordoned: Mapped[bool] = mapped_column(default=False)
    # Who cordoned it, when: shown with the host.
    cordoned_by: Mapped[str] = mapped_column(String(64), default="")
    cordoned_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The sha256 of the cluster join token the host registered with ("" for none; 0004): it places the host in the
    # cluster whose token hash it is. Never shown.
    cluster_token_hash: Mapped[str] = mapped_column(String(64), default="")


class Cluster(Base):
    """A named group of hosts: a host is in it if it matches any of its scopes (manager/clusters.py)."""

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Scopes: a label selector (every pair must match), CIDRs of the host's address, host names (globs).
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    cidrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    hostnames: Mapped[list[str]] = mapped_column(JSON, default=list)
    # sha256 of the cluster's join token (manager/tokens.py); the token is shown once, at create or rotation.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class TrafficCounters(Base):
    """A host's cumulative traffic counters as last sampled (manager/traffic.py): what the next sample's difference
    is taken from. Written by compare-and-set, so two managers on one database never count the same bytes twice."""

    __tablename__ = "traffic_counters"

    host_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    fetched_upstream: Mapped[int] = mapped_column(BigInteger, default=0)
    fetched_peers: Mapped[int] = mapped_column(BigInteger, default=0)
    served_peers: Mapped[int] = mapped_column(BigInteger, default=0)
    served_clients: Mapped[int] = mapped_column(BigInteger, default=0)
    sampled_at: Mapped[float] = mapped_column(Float)


class TrafficHour(Base):
    """The bytes a host moved in one hour (`hour`: its first second, epoch), summed from the samples' differences."""

    __tablename__ = "traffic_hours"

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    host_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    fetched_upstream: Mapped[int] = mapped_column(BigInteger, default=0)
    fetched_peers: Mapped[int] = mapped_column(BigInteger, default=0)
    served_peers: Mapped[int] = mapped_column(BigInteger, default=0)
    served_clients: Mapped[int] = mapped_column(BigInteger, default=0)


class RegistrySecret(Base):
    """A registry credential a task names (by id); its password is a Fernet token, never returned nor logged."""

    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(255))
    password_encrypted: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)


class Task(Base):
    """A distribution task: what (`kind`, `spec`), to which hosts (`targets` as asked; the hosts it resolved to are
    its TaskHost rows), how (rate, concurrency, timeout, mode), and where it is (`state`)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    # image: {"reference", "platforms"}; file: {"url", "path", "digest"} (supernode/jobs.py ImageSpec, FileSpec).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # As asked: {"hosts", "clusters", "selector", "count", "percent"} (manager/task_targets.py).
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Bytes per second per host (0: no limit); hosts given their job at once (0: all); seconds (0: none).
    rate: Mapped[int] = mapped_column(BigInteger, default=0)
    concurrency: Mapped[int] = mapped_column(Integer, default=0)
    timeout: Mapped[float] = mapped_column(Float, default=0.0)
    mode: Mapped[str] = mapped_column(String(16), default="cache")
    secret_id: Mapped[int | None] = mapped_column(ForeignKey("secrets.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    # Why it failed: which hosts, and why each.
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # For several managers on one database (not used yet): which one runs the task, until when.
    lease_owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)


class TaskHost(Base):
    """One targeted host of a task: its job (one per attempt) and the last progress stored of it."""

    __tablename__ = "task_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[str] = mapped_column(String(255))
    # Deterministic from the task, the row and the attempt: a job put again after a restart is the same job.
    job_id: Mapped[str] = mapped_column(String(128), default="")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # The job was put to the channel and not yet cancelled there (restart-safe: cancelled or re-put at start).
    job_live: Mapped[bool] = mapped_column(default=False)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    from_upstream: Mapped[int] = mapped_column(BigInteger, default=0)
    from_peers: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The job's last BlobProgress list, as JSON (supernode/jobs.py).
    blobs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The clusters the host was in when the task was made: who sees the task (manager/scopes.py).
    clusters: Mapped[list[str]] = mapped_column(JSON, default=list)


class TaskEvent(Base):
    """A task's transaction log: who (a user, or `runner`), what, when."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    what: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
