"""Request and response bodies of the supernode's HTTP API, and its errors, shared by `server` and `client`.

Piece sets travel as hex strings of a bitmask: bit i set means piece i is held. The errors:

    BadRequest (ValueError)       a body or query without the shape the API expects: answered 400
    SupernodeUnavailable          the client's: the supernode could not be reached or answered with an error
    ├── JoinRefused               answered 401: the join token was refused, and retrying cannot help
    └── UnknownPeer (LookupError) the scheduler's, answered 410, raised again by the client: register again
        └── CredentialRefused     answered 403: not this peer's credential (supernode/identity.py): register again
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

API_PREFIX = "/api/v1"
ROLE_FEEDER = "feeder"
ROLE_CHILD = "child"
# The header that carries the cluster's join token, at the supernode and at upload servers.
TOKEN_HEADER = "X-Damselfly-Token"


class BadRequest(ValueError):
    """A body that does not have the shape the API expects."""


class SupernodeUnavailable(Exception):
    """The supernode could not be reached or answered with an error."""


class JoinRefused(SupernodeUnavailable):
    """The supernode refused our join token: retrying cannot help."""


class UnknownPeer(SupernodeUnavailable, LookupError):
    """The supernode does not know this peer (it restarted, or the peer's heartbeats lapsed): register again.

    One class on both sides of the wire: the scheduler raises it, the server answers it with 410, and the client
    raises it again on a 410, so that callers that retry any unavailability (peer/download.py) retry this too.
    """


class CredentialRefused(UnknownPeer):
    """The supernode does not take this call as the peer's (answered 403: a credential it did not issue, one from
    before it restarted, or at register a peer id that does not commit to the secret shown): register again."""


def _str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise BadRequest(f"{key!r} must be a non-empty string")
    return value


def _int(body: dict[str, Any], key: str, *, minimum: int = 0, optional: bool = False) -> int | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value > 2**53:
        raise BadRequest(f"{key!r} must be an integer >= {minimum}")
    return value


def _piece_digests(body: dict[str, Any]) -> dict[int, str]:
    raw_digests = body.get("piece_digests") or {}
    if not isinstance(raw_digests, dict):
        raise BadRequest("'piece_digests' must be an object")
    digests: dict[int, str] = {}
    for key, value in raw_digests.items():
        try:
            index = int(key)
        except (TypeError, ValueError) as exc:
            raise BadRequest("piece index must be an integer") from exc
        if index < 0 or not isinstance(value, str) or len(value) != 64:
            raise BadRequest("piece digest must be 64 hex characters")
        digests[index] = value
    return digests


def _peer_ids(body: dict[str, Any], key: str) -> list[str]:
    ids = body.get(key) or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest(f"{key!r} must be a list of peer ids")
    return ids[:64]


def mask_to_hex(mask: int) -> str:
    return format(mask, "x")


def hex_to_mask(text: str, limit_bits: int = 1 << 20) -> int:
    if not isinstance(text, str) or len(text) > limit_bits // 4 + 1:
        raise BadRequest("piece mask must be a hex string")
    try:
        return int(text, 16) if text else 0
    except ValueError as exc:
        raise BadRequest("piece mask must be a hex string") from exc


# What a host says of itself, at register and in each heartbeat, for the platform's view of hosts (manager/):
# a few numbers, so that a heartbeat of 10,000 hosts stays cheap. All optional: an older peer sends none.
_HOST_TEXTS = ("hostname", "version")
_HOST_NUMBERS = (
    "disk_used", "disk_total", "disk_quota", "upload_rate", "download_rate", "swarms",
    "fetched_upstream", "fetched_peers", "served_peers", "served_clients",
)
# Fields this supernode does not know are a newer peer's (a rolling upgrade): ignored, up to this many; more is
# not a newer peer but a wrong body.
MAX_UNKNOWN_HOST_FIELDS = 16


@dataclass(slots=True)
class HostFacts:
    hostname: str = ""
    version: str = ""
    # Bytes the store holds, the size of its filesystem, and the quota (0: none).
    disk_used: int = 0
    disk_total: int = 0
    disk_quota: int = 0
    # Bytes per second over the last heartbeat interval: served to other peers, and fetched (upstream and peers).
    upload_rate: int = 0
    download_rate: int = 0
    # Blobs held whole: the swarms this host can feed.
    swarms: int = 0
    # Bytes since the daemon started (cumulative; a restart starts them again at 0), for the platform's traffic
    # analysis (manager/traffic.py): fetched from the upstream and from other peers, served to other peers and to
    # the local clients (the mirror, the files endpoint).
    fetched_upstream: int = 0
    fetched_peers: int = 0
    served_peers: int = 0
    served_clients: int = 0

    @classmethod
    def parse(cls, value: Any) -> HostFacts:
        if not isinstance(value, dict):
            raise BadRequest("'host' must be an object")
        unknown = set(value) - set(_HOST_TEXTS) - set(_HOST_NUMBERS)
        if len(unknown) > MAX_UNKNOWN_HOST_FIELDS:
            raise BadRequest(f"'host' has {len(unknown)} unknown fields (at most {MAX_UNKNOWN_HOST_FIELDS})")
        texts: dict[str, str] = {}
        for key in _HOST_TEXTS:
            text = value.get(key, "")
            if not isinstance(text, str) or len(text) > 255 or not text.isprintable():
                raise BadRequest(f"'host.{key}' must be a printable string of up to 255 characters")
            texts[key] = text
        numbers: dict[str, int] = {}
        for key in _HOST_NUMBERS:
            number = value.get(key, 0)
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 2**63:
                raise BadRequest(f"'host.{key}' must be a whole number >= 0")
            numbers[key] = number
        fields: dict[str, Any] = {**texts, **numbers}
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _host_facts(body: dict[str, Any]) -> HostFacts | None:
    value = body.get("host")
    return None if value is None else HostFacts.parse(value)


@dataclass(slots=True)
class HeartbeatRequest:
    """A heartbeat's body: the host's facts, or nothing (an empty body, as older peers send)."""

    host: HostFacts | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> HeartbeatRequest:
        unknown = sorted(set(body) - {"host"})
        if unknown:
            raise BadRequest(f"unknown field {str(unknown[0])[:64]!r}")
        return cls(_host_facts(body))

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host.to_json()} if self.host is not None else {}


@dataclass(slots=True)
class RegisterRequest:
    peer_id: str
    upload_port: int
    # Host other peers dial; empty means "as the supernode sees me".
    advertise_host: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # The host's own secret, which the peer id commits to (supernode/identity.py); shown at register only.
    peer_secret: str = ""
    host: HostFacts | None = None
    # The join token of the platform's cluster this host joins (manager/clusters.py); "" for none. The supernode keeps
    # only its sha256 (`cluster_token_hash`), for the platform to match against its clusters'.
    cluster_token: str = ""

    def __repr__(self) -> str:
        # Never the secrets, wherever a request is printed or logged.
        return f"RegisterRequest(peer_id={self.peer_id!r}, upload_port={self.upload_port})"

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RegisterRequest:
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) < 64 and len(v) < 256 for k, v in labels.items()
        ):
            raise BadRequest("'labels' must map strings to strings")
        port = _int(body, "upload_port", minimum=1)
        assert port is not None
        if port > 65535:
            raise BadRequest("'upload_port' out of range")
        host = body.get("advertise_host") or ""
        if not isinstance(host, str) or len(host) > 255:
            raise BadRequest("'advertise_host' must be a string")
        secret = body.get("peer_secret") or ""
        if not isinstance(secret, str) or len(secret) > 256:
            raise BadRequest("'peer_secret' must be a string")
        cluster_token = body.get("cluster_token") or ""
        if not isinstance(cluster_token, str) or len(cluster_token) > 256 or not cluster_token.isascii():
            raise BadRequest("'cluster_token' must be a string of up to 256 ASCII characters")
        return cls(
            peer_id=_str(body, "peer_id"), upload_port=port, advertise_host=host, labels=dict(labels),
            peer_secret=secret, host=_host_facts(body), cluster_token=cluster_token,
        )

    @property
    def cluster_token_hash(self) -> str:
        return cluster_token_hash(self.cluster_token)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        if not self.cluster_token:
            # Not sent without one: the body stays what supernodes before it know.
            del body["cluster_token"]
        return body


def _token_hash(value: Any) -> str:
    """A listed cluster token hash: 64 hex digits, or "" (none, or not one)."""
    text = value if isinstance(value, str) else ""
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else ""


def cluster_token_hash(token: str) -> str:
    """The sha256 of a cluster's join token, hex, as the platform stores its clusters' (manager/tokens.py); "" for
    none."""
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


@dataclass(slots=True)
class RegisterResponse:
    peer_id: str
    url: str
    heartbeat_interval: float
    # What every later call about this peer carries (CREDENTIAL_HEADER); issued by this supernode process.
    credential: str = ""

    def __repr__(self) -> str:
        return f"RegisterResponse(peer_id={self.peer_id!r}, url={self.url!r})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RegisterResponse:
        return cls(
            peer_id=body["peer_id"], url=body["url"], heartbeat_interval=float(body["heartbeat_interval"]),
            credential=str(body.get("credential") or ""),
        )


@dataclass(slots=True)
class JoinRequest:
    peer_id: str
    size: int
    # Pieces already held from an earlier run (resume after restart), or when joining again.
    pieces: str = ""
    # With pieces held: their digests, and whether this member was the swarm's feeder. A restarted supernode
    # rebuilds the swarm from these (supernode/scheduler.py).
    piece_digests: dict[int, str] = field(default_factory=dict)
    was_feeder: bool = False
    # This member was in the swarm before, at this supernode or another (its owner moved, supernode/shards.py):
    # a swarm it joins first is rebuilt, as one joined by a member holding pieces is, even if it holds none.
    rejoining: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any]) -> JoinRequest:
        size = _int(body, "size")
        assert size is not None
        pieces = body.get("pieces", "")
        hex_to_mask(pieces)
        return cls(
            peer_id=_str(body, "peer_id"), size=size, pieces=pieces, piece_digests=_piece_digests(body),
            was_feeder=body.get("was_feeder") is True, rejoining=body.get("rejoining") is True,
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"peer_id": self.peer_id, "size": self.size, "pieces": self.pieces}
        if self.piece_digests:
            body["piece_digests"] = {str(k): v for k, v in self.piece_digests.items()}
        if self.was_feeder:
            body["was_feeder"] = True
        if self.rejoining:
            body["rejoining"] = True
        return body


@dataclass(slots=True)
class ParentInfo:
    peer_id: str
    url: str
    pieces: str
    done: bool


@dataclass(slots=True)
class SwarmView:
    """What one member of a swarm needs to know to make progress."""

    digest: str
    role: str
    size: int
    piece_size: int
    # Piece digests known so far ("" where not yet reported by the feeder), from index `digests_from` on:
    # a member says how many it already has, so a swarm of a large blob does not resend them all each time.
    piece_digests: list[str]
    parents: list[ParentInfo]
    version: int
    feeder_alive: bool
    digests_from: int = 0
    # Moves when the swarm is reset after a bad feeder (supernode/scheduler.py): earlier pieces are void.
    epoch: int = 0

    def to_json(self) -> dict[str, Any]:
        # By hand, not `asdict`: a view is the supernode's most frequent answer, and asdict's recursive deep copy
        # cost more than building the view (tests/supernode/test_api.py keeps the two equal).
        return {
            "digest": self.digest,
            "role": self.role,
            "size": self.size,
            "piece_size": self.piece_size,
            "piece_digests": list(self.piece_digests),
            "parents": [{"peer_id": p.peer_id, "url": p.url, "pieces": p.pieces, "done": p.done} for p in self.parents],
            "version": self.version,
            "feeder_alive": self.feeder_alive,
            "digests_from": self.digests_from,
            "epoch": self.epoch,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SwarmView:
        return cls(
            digest=body["digest"],
            role=body["role"],
            size=int(body["size"]),
            piece_size=int(body["piece_size"]),
            piece_digests=[str(d) for d in body["piece_digests"]],
            parents=[ParentInfo(**p) for p in body["parents"]],
            version=int(body["version"]),
            feeder_alive=bool(body["feeder_alive"]),
            digests_from=int(body.get("digests_from", 0)),
            epoch=int(body.get("epoch", 0)),
        )


@dataclass(slots=True)
class ReportRequest:
    """A member's news: pieces it now holds, digests it computed (feeder only), done, failed, parents that failed
    (unreachable: `bad_parents`; a piece that failed its digest: `corrupt_parents`), and `bad_feeder`: the pieces,
    each verified against the swarm's digests, did not assemble into the blob."""

    peer_id: str
    pieces: str = ""
    piece_digests: dict[int, str] = field(default_factory=dict)
    done: bool = False
    failed: bool = False
    bad_parents: list[str] = field(default_factory=list)
    corrupt_parents: list[str] = field(default_factory=list)
    bad_feeder: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ReportRequest:
        digests = _piece_digests(body)
        bad = _peer_ids(body, "bad_parents")
        corrupt = _peer_ids(body, "corrupt_parents")
        pieces = body.get("pieces", "")
        hex_to_mask(pieces)
        return cls(
            peer_id=_str(body, "peer_id"),
            pieces=pieces,
            piece_digests=digests,
            done=bool(body.get("done", False)),
            failed=bool(body.get("failed", False)),
            bad_parents=bad,
            corrupt_parents=corrupt,
            bad_feeder=body.get("bad_feeder") is True,
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["piece_digests"] = {str(k): v for k, v in self.piece_digests.items()}
        return body


@dataclass(slots=True)
class ReportResponse:
    """The answer to the feeder's reports (children's get none, a 204): how many other members still need pieces,
    so that a feeder nobody waits for reports its digests seldom (peer/reporter.py)."""

    waiting: int

    def to_json(self) -> dict[str, Any]:
        return {"waiting": self.waiting}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ReportResponse:
        return cls(waiting=int(body["waiting"]))


@dataclass(slots=True)
class ViewQuery:
    """The query of a view: whose view, the version it already has (`since`), how long to wait for a newer one,
    and how many piece digests it already has (`from`)."""

    peer_id: str = ""
    since: int = -1
    wait: float = 0.0
    digests_from: int = 0

    @classmethod
    def parse(cls, query: dict[str, str]) -> ViewQuery:
        try:
            return cls(
                peer_id=query.get("peer_id", ""),
                since=int(query.get("since", "-1")),
                wait=float(query.get("wait", "0")),
                digests_from=int(query.get("from", "0")),
            )
        except ValueError as exc:
            raise BadRequest("'since' and 'wait' must be numbers") from exc

    def to_query(self) -> dict[str, str]:
        return {
            "peer_id": self.peer_id,
            "since": str(self.since),
            "wait": str(self.wait),
            "from": str(self.digests_from),
        }


@dataclass(slots=True)
class PeerSummary:
    peer_id: str
    url: str
    labels: dict[str, str]
    # What the host said of itself last (None: nothing), and how many seconds ago it was last heard.
    host: HostFacts | None = None
    seen_ago: float = 0.0
    # The sha256 of the cluster join token the host registered with ("" for none), for operators' listings only.
    cluster_token_hash: str = ""


@dataclass(slots=True)
class PeerList:
    """The registered peers (`GET /api/v1/peers`), for operators, the platform (manager/host_source.py) and tests."""

    peers: list[PeerSummary]
    # How often peers heartbeat: what `seen_ago` is to be read against.
    heartbeat_interval: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PeerList:
        peers = [
            PeerSummary(
                str(p["peer_id"]), str(p["url"]), dict(p["labels"]),
                HostFacts.parse(p["host"]) if p.get("host") is not None else None, float(p.get("seen_ago", 0.0)),
                _token_hash(p.get("cluster_token_hash")),
            )
            for p in body["peers"]
        ]
        return cls(peers=peers, heartbeat_interval=float(body.get("heartbeat_interval", 0.0)))


@dataclass(slots=True)
class SwarmSummary:
    digest: str
    size: int
    pieces: int
    members: int
    # Members done with the blob.
    completed: int
    # The feeder's peer id; None while the swarm has none.
    feeder: str | None


@dataclass(slots=True)
class SwarmList:
    """The swarms the supernode tracks (`GET /api/v1/swarms`), for operators and tests."""

    swarms: list[SwarmSummary]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SwarmList:
        return cls(swarms=[SwarmSummary(**s) for s in body["swarms"]])


@dataclass(slots=True)
class SuspectSummary:
    peer_id: str
    quarantined: bool
    # Each strike: the blob's digest, what was found, which member found it, seconds ago.
    strikes: list[dict[str, Any]]


@dataclass(slots=True)
class SuspectList:
    """Hosts found sending bad bytes, and whether they are quarantined (`GET /api/v1/suspects`), for operators."""

    suspects: list[SuspectSummary]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SuspectList:
        return cls(suspects=[SuspectSummary(**s) for s in body["suspects"]])


@dataclass(slots=True)
class Health:
    """The answer of `/healthz`: the process is up and answering, and whether it runs an open cluster (no secret,
    by the operator's `--insecure-open-cluster`)."""

    status: str = "ok"
    insecure_open_cluster: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Health:
        return cls(status=str(body["status"]), insecure_open_cluster=body.get("insecure_open_cluster") is True)


MAX_CORDONED = 100_000


@dataclass(frozen=True, slots=True)
class CordonSet:
    """Every host an operator cordoned (`PUT /api/v1/cordoned`, the operators' token): the whole set, not a change,
    so a platform that tells it again after a supernode restarted, or twice, does no harm."""

    peers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CordonSet:
        peers = body.get("peers")
        if (
            not isinstance(peers, list) or len(peers) > MAX_CORDONED
            or not all(isinstance(p, str) and 0 < len(p) <= 128 and p.isprintable() for p in peers)
        ):
            raise BadRequest(f"'peers' must be a list of up to {MAX_CORDONED} peer ids")
        return cls(tuple(peers))

    def to_json(self) -> dict[str, Any]:
        return {"peers": list(self.peers)}


MAX_SUPERNODES = 1024


@dataclass(frozen=True, slots=True)
class SupernodeList:
    """The supernodes alive as this one last read them from the directory (`GET /api/v1/supernodes`,
    supernode/directory.py), sorted, itself always in; `age`: seconds since that read (None: Redis never reached)."""

    supernodes: tuple[str, ...]
    age: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"supernodes": list(self.supernodes), "age": self.age}

    @classmethod
    def from_json(cls, body: Any) -> SupernodeList:
        if not isinstance(body, dict) or not isinstance(body.get("supernodes"), list):
            raise BadRequest("not a supernode list: expected {'supernodes': [URL, ...]}")
        urls = body["supernodes"]
        if not urls or len(urls) > MAX_SUPERNODES:
            raise BadRequest(f"a supernode list holds 1 to {MAX_SUPERNODES} URLs")
        found = []
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
                raise BadRequest("a supernode list holds http(s) URLs only")
            found.append(url.rstrip("/"))
        age = body.get("age")
        return cls(tuple(sorted(set(found))), float(age) if isinstance(age, int | float) else None)
