"""One `RegistryClient` per upstream registry, each with the TLS settings configured for it."""

from __future__ import annotations

import ssl

import httpx

from core import errors
from core.errors import RegistryError
from peer.upstream import RegistryClient, UpstreamRegistry


class Upstreams:
    def __init__(
        self, *, attempts: int = 5, backoff: float = 0.5, connect_timeout: float = 5.0, read_timeout: float = 30.0
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._clients: dict[str, RegistryClient] = {}
        self._http: dict[tuple[str, bool], httpx.AsyncClient] = {}

    def client(self, registry: UpstreamRegistry) -> RegistryClient:
        client = self._clients.get(registry.name)
        if client is None or client.registry != registry:
            client = RegistryClient(registry, self._http_for(registry), attempts=self.attempts, backoff=self.backoff)
            self._clients[registry.name] = client
        return client

    def _http_for(self, registry: UpstreamRegistry) -> httpx.AsyncClient:
        key = (registry.ca_file, registry.insecure)
        http = self._http.get(key)
        if http is None:
            verify: ssl.SSLContext | bool = False
            if not registry.insecure:
                # The system's CAs (not httpx's bundled certifi), so a CA the host trusts is trusted here too;
                # a configured CA file comes on top, since the token realm may sit behind a public certificate.
                verify = ssl.create_default_context()
                if registry.ca_file:
                    try:
                        verify.load_verify_locations(cafile=registry.ca_file)
                    except (OSError, ssl.SSLError) as exc:
                        raise RegistryError(
                            errors.UPSTREAM_FAILED, detail=f"{registry.name}: cannot use ca_file {registry.ca_file}"
                        ) from exc
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            http = httpx.AsyncClient(timeout=self.timeout, verify=verify, limits=limits, trust_env=False)
            self._http[key] = http
        return http

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()
