"""The tables: users, API tokens, sessions (migration 0001), the audit log (0002), hosts and clusters (0003), the
hosts' traffic and the hosts' cluster token hashes (0005).

Times are seconds since the epoch (a float), the same in SQLite and PostgreSQL; secrets are stored only as hashes.
"""

from __future__ import annotations

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
    # The sha256 of the cluster join token the host registered with ("" for none; 0005): it places the host in the
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
