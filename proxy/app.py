"""The registry API app: routes, and one place where every error becomes OCI error JSON."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import errors, registry_api
from core.errors import RegistryError
from peer.service import PeerService
from upstream.clients import Upstreams

from .access import AccessChecker
from .blobs import serve_blob
from .config import ProxyConfig
from .listing import Listings
from .manifests import serve_manifest
from .ping import Ping
from .prefetch import blob_digests, prefetch
from .referrers import serve_referrers
from .routing import Target, parse_target

log = logging.getLogger(__name__)
API_VERSION_HEADER = {"docker-distribution-api-version": "registry/2.0"}
READ_METHODS = ("GET", "HEAD")
# Serves one registry API route about a repository.
Handler = Callable[[Request, Target], Awaitable[Response]]


def oci_error_response(exc: RegistryError) -> Response:
    headers = {**API_VERSION_HEADER, **exc.headers}
    return Response(exc.render(), status_code=exc.status, headers=headers, media_type="application/json")


def create_app(config: ProxyConfig, peer: PeerService, upstreams: Upstreams | None = None) -> Starlette:
    # The registry client follows the peer's upstream settings (attempts, backoff, timeouts), which the download's
    # own resuming of broken bodies reads too.
    upstreams = upstreams or Upstreams(peer.config.upstream)
    # Build each configured upstream's client now: loading the system CAs takes ~25 ms, which would otherwise
    # land on the first client's time to first byte.
    for registry in config.registries.values():
        upstreams.client(registry)
    access = AccessChecker(upstreams, config.access_ttl)
    listings = Listings(upstreams, config.listing_ttl)
    ping = Ping(upstreams, config)
    metrics = CollectorRegistry()
    gauges = {
        name: Gauge(f"damselfly_peer_{name}", f"Peer counter {name}", registry=metrics) for name in peer.stats.as_dict()
    }

    async def base(request: Request) -> Response:
        return await ping.answer(
            request.query_params.get("ns"), request.headers.get("authorization"), dict(API_VERSION_HEADER)
        )

    async def manifest(request: Request, target: Target) -> Response:
        response = await serve_manifest(request, target, upstreams, config)
        if config.prefetch and request.method == "GET" and response.status_code == 200:
            digests = blob_digests(bytes(response.body), response.headers.get("content-type", ""))
            if digests:
                auth = request.headers.get("authorization")
                peer.spawn(prefetch(digests, target, auth, peer, access, upstreams), "prefetch")
        return response

    async def blob(request: Request, target: Target) -> Response:
        return await serve_blob(request, target, peer, access, upstreams)

    async def referrers(request: Request, target: Target) -> Response:
        return await serve_referrers(request, target, upstreams, config)

    # One handler per route of the registry API table (core/registry_api.py) but the ping; a registry named by
    # path prefix (`REGISTRY_CATALOG`) reaches its upstream's `CATALOG` (see `parse_target`).
    handlers: dict[registry_api.Route, Handler] = {
        registry_api.MANIFEST: manifest,
        registry_api.BLOB: blob,
        registry_api.TAGS: listings.tags,
        registry_api.CATALOG: listings.catalog,
        registry_api.REFERRERS: referrers,
    }

    async def registry_path(request: Request) -> Response:
        if request.method not in READ_METHODS:
            raise RegistryError(errors.UNSUPPORTED, message="this mirror is read-only")
        target = parse_target(request.url.path, request.query_params.get("ns"), config)
        handler = handlers.get(target.route)
        if handler is None:
            raise RegistryError(errors.NAME_UNKNOWN, message="unknown registry API path", status=404)
        response = await handler(request, target)
        response.headers.update(API_VERSION_HEADER)
        return response

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "peer_id": peer.peer_id})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "peer_id": peer.peer_id,
                **peer.stats.as_dict(),
                "upload_bytes": peer.upload_server.bytes_served,
                "downloads": peer.active_downloads,
            }
        )

    async def metrics_endpoint(request: Request) -> Response:
        for name, value in peer.stats.as_dict().items():
            gauges[name].set(value)
        return Response(generate_latest(metrics), media_type="text/plain; version=0.0.4")

    async def on_registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RegistryError)
        return oci_error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = errors.UNSUPPORTED if exc.status_code == 405 else errors.NAME_UNKNOWN
        return oci_error_response(RegistryError(code, message=str(exc.detail), status=exc.status_code))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return oci_error_response(RegistryError(errors.UNAVAILABLE, message="internal error", status=500))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstreams.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    base_path = registry_api.BASE.template
    routes = [
        Route(base_path, base, methods=["GET", "HEAD"]),
        Route(base_path.rstrip("/"), base, methods=["GET", "HEAD"]),
        # Every other registry API path: matched against the route table by `parse_target`, which answers the
        # errors a registry would (unknown path, invalid name, digest or tag) in OCI form.
        Route(base_path + "{path:path}", registry_path, methods=methods),
        Route("/healthz", healthz),
        Route("/stats", stats),
        Route("/metrics", metrics_endpoint),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={RegistryError: on_registry_error, HTTPException: on_http_error, Exception: on_unexpected},
    )
