"""The file key: what names a file's swarm (and its place in the store) when no digest of its content is given.

A file fetched with its digest is keyed by a key derived from that digest alone (`digest_file_key`): the same
file from any URL is one swarm, and never a blob's swarm. Without one, the key is derived from what
says "this version of this file": the URL (with the query parameters an origin is configured to ignore, such as
signatures that differ per request, left out), the size the origin states, and its validators (ETag,
Last-Modified). A changed file has another size or other validators, so it is another swarm, never mixed with the
old one. The key has a digest's shape (`sha256:<hex>`), so the supernode, the upload servers and the store take
it as they take a blob's digest; it is the sha256 of a domain-separated description, not of the content, so it
cannot be mistaken for a content digest short of a sha256 preimage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .digest import Digest

# Bumped whenever the description below changes, so old keys never collide with new ones.
_DOMAIN = "damselfly file key v1"


def keyed_url(url: str, ignored_query: Collection[str] = ()) -> str:
    """`url` as it goes into the key: scheme and host in lower case, no fragment, the ignored query parameters
    (compared case-insensitively) left out and the others kept in their order."""
    parts = urlsplit(url)
    ignored = {name.lower() for name in ignored_query}
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in ignored]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, urlencode(kept), ""))


def digest_file_key(content: Digest) -> Digest:
    """The swarm key of a file asked for by the digest of its content. Not the digest itself: a file's swarm and
    store entry must never be a blob's, or anyone able to name a layer's digest on this host's files endpoint would
    be served a private image's layer without the registry's say (the mirror checks access per blob; a file's
    origin knows nothing of it)."""
    description = "\n".join((_DOMAIN, "content", str(content)))
    return Digest("sha256", hashlib.sha256(description.encode()).hexdigest())


def file_key(url: str, size: int, etag: str, last_modified: str, ignored_query: Collection[str] = ()) -> Digest:
    """The swarm key of the file at `url` as the origin describes it now (size and validators)."""
    description = "\n".join((_DOMAIN, keyed_url(url, ignored_query), str(size), etag, last_modified))
    return Digest("sha256", hashlib.sha256(description.encode()).hexdigest())
