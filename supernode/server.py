"""The supernode's HTTP API: handlers only translate between HTTP and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp

from core.digest import Digest, InvalidDigest

from . import routes
from .addresses import AddressPolicy, peer_url
from .api import (
    TOKEN_HEADER,
    BadRequest,
    CordonSet,
    Health,
    HeartbeatRequest,
    JoinRequest,
    PeerList,
    PeerSummary,
    RegisterRequest,
    RegisterResponse,
    ReportRequest,
    ReportResponse,
    SupernodeList,
    SuspectList,
    SuspectSummary,
    SwarmList,
    SwarmSummary,
    UnknownPeer,
    ViewQuery,
    hex_to_mask,
)
from .asgi import NO_CONTENT, Answer, Call, Endpoint, FastPath, Handler, error_answer, json_answer
from .config import SupernodeConfig
from .directory import SupernodeDirectory
from .identity import (
    CREDENTIAL_HEADER,
    PEER_HEADER,
    IdentityRefused,
    certificate_peer_id,
    credential_hash,
    is_bound,
    new_credential,
)
from .job_board import JobBoard, JobBoardFull, JobMoved, NotYourJob
from .jobs import Job, JobsQuery, ProgressList, ProgressReport
from .notifier import SwarmNotifier
from .routes import ApiRoute
from .scheduler import Scheduler, UnknownSwarm

log = logging.getLogger(__name__)
TOKEN = TOKEN_HEADER.lower().encode()
STOPPING = "the supernode is stopping: keep to your parents and join again when it is back"
CREDENTIAL = CREDENTIAL_HEADER.lower().encode()
PEER = PEER_HEADER.lower().encode()
AUTHORIZATION = b"authorization"
# What the operators' token opens (with or without the cluster's secret).
OPERATOR_ROUTES = frozenset({
    routes.LIST_PEERS, routes.LIST_SWARMS, routes.LIST_SUSPECTS, routes.CLEAR_SUSPECT, routes.SET_CORDONED,
    routes.PUT_JOB, routes.CANCEL_JOB, routes.LIST_JOB_PROGRESS, routes.LIST_SUPERNODES,
})
JOBS_STOPPING = "the supernode is stopping: ask for your jobs again when it is back"


def create_app(
    config: SupernodeConfig, scheduler: Scheduler | None = None, job_board: JobBoard | None = None,
    directory: SupernodeDirectory | None = None,
) -> ASGIApp:
    """The supernode's app. The scheduler and the job board are the caller's to give when it reads them in place
    (damselfly/cli.py: the platform hosted in the same process), else the app's own. With a `directory` (Redis,
    supernode/directory.py) it announces itself and serves the live set; the app's lifespan owns its task."""
    scheduler = scheduler or Scheduler(config.scheduler_config())
    board = job_board if job_board is not None else JobBoard()
    notifier = SwarmNotifier()
    metrics = CollectorRegistry()
    peers_gauge = Gauge("damselfly_supernode_peers", "Registered live peers", registry=metrics)
    swarms_gauge = Gauge("damselfly_supernode_swarms", "Swarms the supernode tracks", registry=metrics)
    expired = Counter("damselfly_supernode_peers_expired", "Peers expired for missed heartbeats", registry=metrics)
    resets_gauge = Gauge(
        "damselfly_supernode_swarm_resets", "Swarms reset since start: their feeder's digests were bad",
        registry=metrics,
    )
    quarantined_gauge = Gauge("damselfly_supernode_quarantined_hosts", "Hosts in quarantine", registry=metrics)
    token = config.join_token.encode()
    stopping = False
    addresses = AddressPolicy(config.peer_networks)
    # The operator let it run without a secret beyond loopback (damselfly/cluster_secret.py): probes are told too.
    health = Health(insecure_open_cluster=not config.join_token and config.insecure_open_cluster)

    def guarded(route: ApiRoute, handler: Handler) -> Endpoint:
        """Join-token check and translation of domain errors into HTTP answers."""

        async def wrapped(call: Call) -> Answer:
            # Operators hold their own token, not the cluster's: it opens the operators' routes alone.
            operating = route in OPERATOR_ROUTES and is_operator(call)
            if token and not operating and not hmac.compare_digest(call.header(TOKEN).encode(), token):
                return error_answer(401, "a valid join token is required")
            try:
                return await handler(call)
            except BadRequest as exc:
                return error_answer(400, str(exc))
            except InvalidDigest as exc:
                return error_answer(400, str(exc))
            except UnknownPeer:
                return error_answer(410, "unknown peer: register again")
            except IdentityRefused as exc:
                return error_answer(403, str(exc))
            except UnknownSwarm:
                return error_answer(404, "unknown swarm: join first")
            except NotYourJob as exc:
                return error_answer(403, str(exc))
            except JobMoved as exc:
                return error_answer(409, str(exc))
            except JobBoardFull as exc:
                return error_answer(429, str(exc))
            except ClientDisconnect:
                # The caller hung up mid-body: nobody is left to answer, and it is no server error.
                return error_answer(400, "client disconnected")

        return Endpoint(wrapped, route.param)

    def digest_of(call: Call) -> str:
        return str(Digest.parse(call.param))

    def authenticated(call: Call, peer_id: str) -> str:
        """`peer_id` if the call carries the credential issued to it; an unknown peer must register (410)."""
        record = scheduler.peers.get(peer_id)
        if record is None:
            raise UnknownPeer(peer_id)
        if mutual_tls:
            if certificate_peer_id(call.scope) != peer_id:
                raise IdentityRefused(f"the call about peer {peer_id[:80]!r} came with another host's certificate")
            return peer_id
        presented = call.header(CREDENTIAL)
        if not presented or not hmac.compare_digest(credential_hash(presented), record.credential_hash):
            raise IdentityRefused(f"the call lacks the credential issued to peer {peer_id[:80]!r}: register again")
        return peer_id

    operator = credential_hash(config.operator_token) if config.operator_token else b""
    # Under mutual TLS a host is the common name of its certificate (supernode/identity.py), checked on every call.
    mutual_tls = bool(config.client_ca)

    def is_operator(call: Call) -> bool:
        scheme, _, presented = call.header(AUTHORIZATION).partition(" ")
        return bool(operator) and scheme.lower() == "bearer" and hmac.compare_digest(
            credential_hash(presented.strip()), operator
        )

    def any_member(call: Call) -> None:
        """The listings show every host's address and every swarm: only to an operator (the operators' token) or
        a registered host (its id and credential in the headers)."""
        if is_operator(call) or (mutual_tls and certificate_peer_id(call.scope)):
            return
        try:
            authenticated(call, call.header(PEER) or "-")
        except UnknownPeer:
            raise IdentityRefused("the listings answer registered hosts only (their id and credential)") from None

    async def register(call: Call) -> Answer:
        req = RegisterRequest.parse(await call.json())
        if mutual_tls:
            # The certificate is the identity: the host is who it proved to be, whatever id it asked for.
            req.peer_id = certificate_peer_id(call.scope)
            if not req.peer_id:
                raise IdentityRefused("mutual TLS: the client certificate has no common name to be the peer id")
        elif not is_bound(req.peer_id, req.peer_secret):
            raise IdentityRefused("the peer id does not commit to the secret shown (supernode/identity.py)")
        client = call.scope.get("client")
        # Peers are sent to dial this URL: it is built from a checked address and port only (supernode/addresses.py).
        address = addresses.address_for(req.advertise_host, client[0] if client else "127.0.0.1")
        url = peer_url(address, req.upload_port)
        # A new credential at each register: one a restarted host lost, or an old one someone saw, stops working.
        credential = new_credential()
        scheduler.register(
            req.peer_id, url, req.labels, time.monotonic(), credential_hash(credential), req.host,
            req.cluster_token_hash,
        )
        answer = RegisterResponse(req.peer_id, url, scheduler.config.heartbeat_interval, credential)
        return json_answer(answer.to_json())

    def wake_waiters() -> None:
        """Wake the long-polls that what the scheduler just did concerns."""
        for digest, members in scheduler.take_wakes().items():
            if members is None:
                notifier.notify(digest)
            else:
                notifier.notify_members(digest, members)

    async def heartbeat(call: Call) -> Answer:
        peer_id = authenticated(call, call.param)
        # The host's facts ride in the body (none from an older peer): no request of its own per heartbeat.
        req = HeartbeatRequest.parse(await call.json())
        scheduler.heartbeat(peer_id, time.monotonic(), req.host)
        return NO_CONTENT

    async def leave(call: Call) -> Answer:
        if call.param in scheduler.peers:
            scheduler.remove_peer(authenticated(call, call.param))
        wake_waiters()
        return NO_CONTENT

    async def join(call: Call) -> Answer:
        digest = digest_of(call)
        req = JoinRequest.parse(await call.json())
        peer_id = authenticated(call, req.peer_id)
        view = scheduler.join(
            digest, peer_id, req.size, hex_to_mask(req.pieces), time.monotonic(), req.piece_digests, req.was_feeder,
            req.rejoining,
        )
        wake_waiters()
        return json_answer(view.to_json())

    async def report(call: Call) -> Answer:
        digest = digest_of(call)
        req = ReportRequest.parse(await call.json())
        scheduler.report(
            digest,
            authenticated(call, req.peer_id),
            pieces=hex_to_mask(req.pieces),
            piece_digests=req.piece_digests,
            done=req.done,
            failed=req.failed,
            bad_parents=req.bad_parents,
            now=time.monotonic(),
            corrupt_parents=req.corrupt_parents,
            bad_feeder=req.bad_feeder,
        )
        wake_waiters()
        swarm = scheduler.swarms.get(digest)
        if swarm is None or swarm.feeder != req.peer_id:
            # Children's piece counts are the most frequent request of all; what follows is news for the feeder
            # only, and a peer told nothing assumes others wait (peer/reporter.py).
            return NO_CONTENT
        return json_answer(ReportResponse(scheduler.waiting(digest, req.peer_id)).to_json())

    async def view(call: Call) -> Answer:
        digest = digest_of(call)
        query = ViewQuery.parse(call.query())
        peer_id, since, digests_from = authenticated(call, query.peer_id), query.since, query.digests_from
        deadline = time.monotonic() + min(max(query.wait, 0.0), config.view_wait)
        swarm = scheduler.swarms.get(digest)
        # The feeder's own long-poll: its connection reset means its process died, news not to wait 8 s for.
        gone = asyncio.ensure_future(call.disconnected()) if swarm is not None and swarm.feeder == peer_id else None

        def holding() -> bool:
            # The feeder's poll is held to its end whatever the swarm's news (it reads none of it: peer/swarm_fetch.py,
            # _keep_feeding), so that it is open when the feeder dies. Answered at each change, as a member's is, it
            # was closed between two answers about as often as open, and a death in such a gap was not seen.
            current = scheduler.swarms.get(digest)
            return gone is not None and current is not None and current.feeder == peer_id

        try:
            # `> 0` also ends the wait at once for a `wait` of NaN (no comparison with NaN is true).
            while not stopping and (holding() or not scheduler.news_for(digest, peer_id, since, digests_from)):
                if not (left := deadline - time.monotonic()) > 0:
                    break
                if gone is None:
                    await notifier.wait(digest, peer_id, left)
                    continue
                waiting = asyncio.ensure_future(notifier.wait(digest, peer_id, left))
                await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
                if gone.done():
                    waiting.cancel()
                    scheduler.feeder_disconnected(digest, peer_id)
                    wake_waiters()
                    return error_answer(400, "client disconnected")
        finally:
            if gone is not None:
                gone.cancel()
        if stopping:
            return error_answer(503, STOPPING)
        return json_answer(scheduler.view(digest, peer_id, time.monotonic(), digests_from).to_json())

    async def list_swarms(call: Call) -> Answer:
        any_member(call)
        swarms = [
            SwarmSummary(s.digest, s.layout.blob_size, s.layout.count, len(s.members), s.completed_members, s.feeder)
            for s in scheduler.swarms.values()
        ]
        return json_answer(SwarmList(swarms).to_json())

    async def list_peers(call: Call) -> Answer:
        any_member(call)
        # The hosts' cluster token hashes are for the operators (a standalone platform places hosts by them).
        operator = is_operator(call)
        now = time.monotonic()
        peers = [
            PeerSummary(p.peer_id, p.url, p.labels, p.host, round(max(now - p.last_seen, 0.0), 3),
                        p.cluster_token_hash if operator else "")
            for p in scheduler.peers.values()
        ]
        return json_answer(PeerList(peers, scheduler.config.heartbeat_interval).to_json())

    async def list_suspects(call: Call) -> Answer:
        any_member(call)
        now = time.monotonic()
        suspects = [
            SuspectSummary(
                suspect.peer_id,
                suspect.peer_id in scheduler.suspects.quarantined,
                [
                    {"digest": k.digest, "reason": k.reason, "reporter": k.reporter, "seconds_ago": round(now - k.at)}
                    for k in suspect.strikes
                ],
            )
            for suspect in scheduler.suspects.hosts.values()
        ]
        return json_answer(SuspectList(suspects).to_json())

    async def clear_suspect(call: Call) -> Answer:
        if not is_operator(call):
            raise IdentityRefused("clearing a host from quarantine takes the operators' token")
        if not scheduler.suspects.clear(call.param):
            return error_answer(404, "no such suspect")
        log.warning("host %s cleared from quarantine by an operator", call.param)
        return NO_CONTENT

    async def set_cordoned(call: Call) -> Answer:
        operators_only(call, "cordoning hosts")
        cordon = CordonSet.parse(await call.json())
        newly = set(cordon.peers) - scheduler.cordoned
        scheduler.set_cordoned(cordon.peers)
        wake_waiters()  # the swarms a newly cordoned host left: its children hear it at once
        if newly:
            log.info("%d host(s) cordoned by the platform", len(newly))
        return NO_CONTENT

    def operators_only(call: Call, what: str) -> None:
        if not is_operator(call):
            raise IdentityRefused(f"{what} takes the operators' token")

    async def host_jobs(call: Call) -> Answer:
        peer_id = authenticated(call, call.param)
        query = JobsQuery.parse(call.query())
        jobs = await board.wait_jobs(peer_id, query.since, query.wait)
        if stopping:
            return error_answer(503, JOBS_STOPPING)
        return json_answer(jobs.to_json())

    async def job_progress(call: Call) -> Answer:
        peer_id = authenticated(call, call.param)
        board.record(peer_id, ProgressReport.parse(await call.json()).progress)
        return NO_CONTENT

    async def put_job(call: Call) -> Answer:
        operators_only(call, "putting a job")
        body = await call.json()
        body.setdefault("job_id", call.param)
        job = Job.parse(body)
        if job.job_id != call.param:
            raise BadRequest("the body's 'job_id' is not the one in the path")
        board.put(job)
        return NO_CONTENT

    async def cancel_job(call: Call) -> Answer:
        operators_only(call, "cancelling a job")
        if not board.withdraw(call.param):
            return error_answer(404, "no such job")
        return NO_CONTENT

    async def list_job_progress(call: Call) -> Answer:
        operators_only(call, "reading the jobs' progress")
        return json_answer(ProgressList(tuple(board.progress())).to_json())

    async def list_supernodes(call: Call) -> Answer:
        if directory is None:
            return error_answer(404, "this supernode keeps no directory (it runs without --redis): use your list")
        return json_answer(SupernodeList(directory.live(), directory.age()).to_json())

    async def healthz(call: Call) -> Answer:
        return json_answer(health.to_json())

    async def metrics_endpoint(call: Call) -> Answer:
        peers_gauge.set(len(scheduler.peers))
        swarms_gauge.set(len(scheduler.swarms))
        resets_gauge.set(scheduler.resets)
        quarantined_gauge.set(len(scheduler.suspects.quarantined))
        return Answer(200, generate_latest(metrics), b"text/plain; version=0.0.4; charset=utf-8")

    async def expiry_loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            dead = scheduler.expire(time.monotonic())
            if dead:
                expired.inc(len(dead))
            wake_waiters()
            board.sweep()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The expiry loop is owned by the app's lifespan: it starts and stops with the server.
        task = asyncio.create_task(expiry_loop(), name="supernode-expiry")
        if directory is not None:
            directory.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if directory is not None:
                await directory.close()

    # Health and metrics answer without the join token: probes and scrapers do not hold it.
    endpoints = {routes.HEALTHZ: Endpoint(healthz), routes.METRICS: Endpoint(metrics_endpoint)}
    handlers = {
        routes.REGISTER: register,
        routes.LIST_PEERS: list_peers,
        routes.HEARTBEAT: heartbeat,
        routes.LEAVE: leave,
        routes.LIST_SWARMS: list_swarms,
        routes.JOIN: join,
        routes.REPORT: report,
        routes.VIEW: view,
        routes.LIST_SUSPECTS: list_suspects,
        routes.CLEAR_SUSPECT: clear_suspect,
        routes.SET_CORDONED: set_cordoned,
        routes.HOST_JOBS: host_jobs,
        routes.JOB_PROGRESS: job_progress,
        routes.PUT_JOB: put_job,
        routes.CANCEL_JOB: cancel_job,
        routes.LIST_JOB_PROGRESS: list_job_progress,
        routes.LIST_SUPERNODES: list_supernodes,
    }
    endpoints.update((route, guarded(route, handler)) for route, handler in handlers.items())
    app = Starlette(
        routes=[Route(r.path, endpoints[r], methods=[r.method]) for r in routes.ROUTES], lifespan=lifespan
    )
    def begin_stop() -> None:
        """SIGTERM: every long-polled view and job list is answered at once that the supernode is stopping, so that
        the peers keep to their parents and join again once it is back, rather than the stop waiting out their
        polls."""
        nonlocal stopping
        stopping = True
        notifier.notify_everyone()
        board.stop()

    # The frequent requests skip Starlette's layers, to the same endpoints.
    return FastPath(app, endpoints, begin_stop)
