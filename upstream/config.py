"""How the registry client behaves: attempts, backoff, timeouts and token caching, each with its default here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    # Tries of one request, the first included, on 429, 5xx and connection errors (a certificate or protocol
    # mismatch is not retried: it is configuration). A blob body that breaks off is resumed by the download, not
    # here, and counts against the same number there: each failure is counted by one loop only.
    attempts: int = 5
    # Seconds before the first retry; doubled for each one after.
    backoff: float = 0.5
    # The longest wait between two tries, however many came before.
    max_backoff: float = 8.0
    # Connecting to the registry (or where it redirects), and the longest silence while reading its answer.
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # The ping only tells clients how to authenticate: it must answer quickly even when the upstream does not.
    ping_timeout: float = 3.0
    # Bearer tokens kept per (realm, service, scope, credential), and as many (repository, credential) pairs whose
    # last working token is sent at once.
    token_cache_size: int = 4096
    # Lifetime of a token whose realm says none (the distribution spec's default).
    default_token_lifetime: float = 60.0
    # Connections to one registry's API through httpx at once, and kept open between requests.
    max_connections: int = 200
    max_keepalive_connections: int = 50
