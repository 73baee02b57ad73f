"""Talking to upstream registries (OCI distribution API): one client per registry, its credentials and retries.

`registry.py` is what is configured about a registry, `config.py` how the client behaves (attempts, backoff,
timeouts, token cache), `auth.py` the credentials (Basic, Bearer tokens from a challenge's realm), `client.py`
one registry's client (requests with auth and retries), `raw_http.py` the narrow GET that receives blob bodies
into the caller's buffers, `blob.py` one blob at the upstream read by range, `clients.py` the set of clients,
one per registry with its TLS settings. Nothing here imports any other Damselfly package but `core`.
"""
