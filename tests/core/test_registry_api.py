"""The registry API route table: which route a path is, the parameters' checks and their errors, and the paths
built from it."""

from __future__ import annotations

import pytest

from core import errors, registry_api
from core.errors import RegistryError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("path", "route", "values"),
    [
        ("/v2/", registry_api.BASE, {}),
        ("/v2/team/app/manifests/v1", registry_api.MANIFEST, {"name": "team/app", "reference": "v1"}),
        (f"/v2/team/app/blobs/{DIGEST}", registry_api.BLOB, {"name": "team/app", "digest": DIGEST}),
        # The name matches loosely (a registry host in front, anything malformed): it is checked separately.
        ("/v2/localhost:5000/A/manifests/v1", registry_api.MANIFEST, {"name": "localhost:5000/A", "reference": "v1"}),
        # A path's last fixed part decides the route, whatever the name holds.
        ("/v2/a/manifests/x/blobs/y", registry_api.BLOB, {"name": "a/manifests/x", "digest": "y"}),
        ("/v2/team/app/tags/list", registry_api.TAGS, {"name": "team/app"}),
        # A query string is no part of the route.
        ("/v2/team/app/tags/list?n=2&last=v1", registry_api.TAGS, {"name": "team/app"}),
        (f"/v2/team/app/referrers/{DIGEST}", registry_api.REFERRERS, {"name": "team/app", "digest": DIGEST}),
        ("/v2/_catalog", registry_api.CATALOG, {}),
        ("/v2/localhost:5000/_catalog", registry_api.REGISTRY_CATALOG, {"registry": "localhost:5000"}),
    ],
)
def test_a_path_matches_its_route(path: str, route: registry_api.Route, values: dict[str, str]) -> None:
    assert registry_api.match(path) == (route, values)


@pytest.mark.parametrize(
    "path",
    ["/v2", "/v2/team/app/tags", "/v2/a/b/_catalog", "/v2/manifests/v1", "/v2/team/app/blobs/", "/v3/a/blobs/x"],
)
def test_other_paths_match_no_route(path: str) -> None:
    assert registry_api.match(path) is None


@pytest.mark.parametrize(
    ("route", "values", "code", "detail"),
    [
        (registry_api.BLOB, {"name": "team/app", "digest": "sha256:0"}, errors.DIGEST_INVALID, {"digest": "sha256:0"}),
        # A reference that is neither tag nor digest names no manifest that could exist: 404, not 400.
        (registry_api.MANIFEST, {"name": "team/app", "reference": "-x"}, errors.MANIFEST_UNKNOWN, {"reference": "-x"}),
        (registry_api.REFERRERS, {"name": "team/app", "digest": "v1"}, errors.DIGEST_INVALID, {"digest": "v1"}),
        (registry_api.REGISTRY_CATALOG, {"registry": "no_host"}, errors.NAME_UNKNOWN, {"registry": "no_host"}),
        (registry_api.MANIFEST, {"name": "Team/App", "reference": "v1"}, errors.NAME_INVALID, {"name": "Team/App"}),
        # Both bad: the digest is reported, as a registry checks from the end of the path back.
        (registry_api.BLOB, {"name": "..", "digest": "md5:00"}, errors.DIGEST_INVALID, {"digest": "md5:00"}),
    ],
)
def test_malformed_parameters_raise_their_oci_error(
    route: registry_api.Route, values: dict[str, str], code: errors.ErrorCode, detail: dict[str, str]
) -> None:
    with pytest.raises(RegistryError) as raised:
        route.check(values)
    assert (raised.value.error, raised.value.detail) == (code, detail)


def test_paths_are_built_from_the_table_and_never_malformed() -> None:
    assert registry_api.BASE.path() == "/v2/"
    assert registry_api.BLOB.path(name="library/alpine", digest=DIGEST) == f"/v2/library/alpine/blobs/{DIGEST}"
    assert registry_api.MANIFEST.path(name="a/b", reference="v1.0") == "/v2/a/b/manifests/v1.0"
    with pytest.raises(RegistryError):
        registry_api.MANIFEST.path(name="a/../../b", reference="v1")
    with pytest.raises(TypeError):
        registry_api.BLOB.path(name="a", reference=DIGEST)


def test_urls_carry_their_query_percent_encoded() -> None:
    assert registry_api.TAGS.url([("n", "2"), ("last", "v1")], name="a/b") == "/v2/a/b/tags/list?n=2&last=v1"
    assert registry_api.CATALOG.url([("last", "a b&c")]) == "/v2/_catalog?last=a+b%26c"
    assert registry_api.CATALOG.url() == "/v2/_catalog"
