"""One `RegistryClient` per upstream registry, each with the TLS settings configured for it."""

from __future__ import annotations

import ssl

import httpx

from core import errors
from core.errors import RegistryError

from .client import RegistryClient
from .config import UpstreamConfig
from .raw_http import RawHttpClient
from .registry import UpstreamRegistry


class Upstreams:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self._clients: dict[str, RegistryClient] = {}
        self._http: dict[tuple[str, bool], tuple[httpx.AsyncClient, RawHttpClient]] = {}

    def client(self, registry: UpstreamRegistry) -> RegistryClient:
        client = self._clients.get(registry.name)
        if client is None or client.registry != registry:
            http, raw = self._http_for(registry)
            client = RegistryClient(registry, http, self.config, raw=raw)
            self._clients[registry.name] = client
        return client

    def _http_for(self, registry: UpstreamRegistry) -> tuple[httpx.AsyncClient, RawHttpClient]:
        """httpx for the registry API, and the raw client for blob bodies, with the same TLS settings."""
        key = (registry.ca_file, registry.insecure)
        clients = self._http.get(key)
        if clients is None:
            context = _ssl_context(registry)
            limits = httpx.Limits(
                max_connections=self.config.max_connections,
                max_keepalive_connections=self.config.max_keepalive_connections,
            )
            http = httpx.AsyncClient(
                timeout=self.timeout, verify=context if context is not None else False, limits=limits, trust_env=False
            )
            raw = RawHttpClient(
                ssl_context=context or _unverified_context(),
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout,
            )
            clients = self._http[key] = (http, raw)
        return clients

    async def aclose(self) -> None:
        for http, _ in self._http.values():
            await http.aclose()


def _ssl_context(registry: UpstreamRegistry) -> ssl.SSLContext | None:
    """The context that verifies this registry's certificates; None when it is configured `insecure`."""
    if registry.insecure:
        return None
    # The system's CAs (not httpx's bundled certifi), so a CA the host trusts is trusted here too; a configured
    # CA file comes on top, since the token realm may sit behind a public certificate.
    context = ssl.create_default_context()
    if registry.ca_file:
        try:
            context.load_verify_locations(cafile=registry.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(
                errors.UPSTREAM_FAILED, detail=f"{registry.name}: cannot use ca_file {registry.ca_file}"
            ) from exc
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
