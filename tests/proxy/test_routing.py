"""Routing without sockets: which upstream registry and repository a request path is for, and what is refused."""

from __future__ import annotations

import pytest

from core import registry_api
from core.errors import RegistryError
from proxy.config import DOCKER_HUB, ProxyConfig
from proxy.routing import parse_target, resolve_registry
from upstream.registry import UpstreamRegistry

DIGEST = "sha256:" + "a" * 64
PRIVATE = UpstreamRegistry(name="registry.example.test", url="https://registry.example.test")
LOCAL = UpstreamRegistry(name="127.0.0.1:5000", url="http://127.0.0.1:5000")


def config(**kwargs: object) -> ProxyConfig:
    registries = {"docker.io": DOCKER_HUB, PRIVATE.name: PRIVATE, LOCAL.name: LOCAL}
    return ProxyConfig(registries=registries, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "ns", "registry", "repository"),
    [
        # containerd: the registry in ?ns=
        ("/v2/team/app/manifests/v1", "registry.example.test", "registry.example.test", "team/app"),
        ("/v2/team/app/manifests/v1", "REGISTRY.example.test", "registry.example.test", "team/app"),
        ("/v2/team/app/manifests/v1", "127.0.0.1:5000", "127.0.0.1:5000", "team/app"),
        # containerd with override_path: the registry both in the path and in ?ns=
        (
            "/v2/registry.example.test/team/app/manifests/v1",
            "registry.example.test",
            "registry.example.test",
            "team/app",
        ),
        # ... but a first component that is not the ns registry stays part of the repository
        (
            "/v2/other.example.test/app/manifests/v1",
            "registry.example.test",
            "registry.example.test",
            "other.example.test/app",
        ),
        # containers/image: the registry as first path component
        ("/v2/registry.example.test/team/app/manifests/v1", None, "registry.example.test", "team/app"),
        ("/v2/127.0.0.1:5000/team/app/blobs/" + DIGEST, None, "127.0.0.1:5000", "team/app"),
        # docker: no registry at all, the default; Docker Hub one-word names live under library/
        ("/v2/team/app/manifests/v1", None, "docker.io", "team/app"),
        ("/v2/alpine/manifests/3.19", None, "docker.io", "library/alpine"),
        ("/v2/library/alpine/manifests/3.19", None, "docker.io", "library/alpine"),
        ("/v2/docker.io/alpine/manifests/3.19", None, "docker.io", "library/alpine"),
        ("/v2/index.docker.io/team/app/manifests/v1", None, "docker.io", "team/app"),
        ("/v2/alpine/manifests/3.19", "docker.io", "docker.io", "library/alpine"),
        # an empty ns is no ns
        ("/v2/team/app/manifests/v1", "", "docker.io", "team/app"),
        # one-word names elsewhere are not rewritten
        ("/v2/registry.example.test/app/manifests/v1", None, "registry.example.test", "app"),
    ],
)
def test_routes(path: str, ns: str | None, registry: str, repository: str) -> None:
    target = parse_target(path, ns, config())
    assert (target.registry.name, target.repository) == (registry, repository)


def test_kind_reference_and_digest() -> None:
    blob = parse_target(f"/v2/team/app/blobs/{DIGEST}", None, config())
    assert (blob.route, blob.reference, str(blob.digest)) == (registry_api.BLOB, DIGEST, DIGEST)
    tag = parse_target("/v2/team/app/manifests/v1.2_3-rc", None, config())
    assert (tag.route, tag.reference, tag.digest) == (registry_api.MANIFEST, "v1.2_3-rc", None)


@pytest.mark.parametrize(
    ("path", "ns", "registry"),
    [
        ("/v2/_catalog", None, "docker.io"),
        ("/v2/_catalog", "registry.example.test", "registry.example.test"),
        ("/v2/registry.example.test/_catalog", None, "registry.example.test"),
        ("/v2/127.0.0.1:5000/_catalog", None, "127.0.0.1:5000"),
    ],
)
def test_the_catalog_is_of_a_whole_registry(path: str, ns: str | None, registry: str) -> None:
    target = parse_target(path, ns, config())
    assert (target.registry.name, target.repository, target.route) == (registry, "", registry_api.CATALOG)


def test_tags_and_referrers_are_about_a_repository() -> None:
    tags = parse_target("/v2/registry.example.test/team/app/tags/list", None, config())
    assert (tags.registry, tags.repository, tags.route) == (PRIVATE, "team/app", registry_api.TAGS)
    referrers = parse_target(f"/v2/alpine/referrers/{DIGEST}", None, config())
    assert (referrers.repository, referrers.route, str(referrers.digest)) == (
        "library/alpine", registry_api.REFERRERS, DIGEST
    )


def test_the_default_registry_is_configurable() -> None:
    target = parse_target("/v2/team/app/manifests/v1", None, config(default_registry=PRIVATE.name))
    assert target.registry is PRIVATE


@pytest.mark.parametrize(
    ("path", "ns", "status", "code"),
    [
        ("/v2/Team/app/manifests/v1", None, 400, "NAME_INVALID"),
        ("/v2/team/a..b/manifests/v1", None, 400, "NAME_INVALID"),
        ("/v2/team//app/manifests/v1", None, 400, "NAME_INVALID"),
        ("/v2/team/app-/manifests/v1", None, 400, "NAME_INVALID"),
        ("/v2/" + "a" * 256 + "/manifests/v1", None, 400, "NAME_INVALID"),
        ("/v2/team/app/blobs/v1", None, 400, "DIGEST_INVALID"),
        ("/v2/team/app/blobs/sha256:" + "A" * 64, None, 400, "DIGEST_INVALID"),
        ("/v2/team/app/blobs/sha384:" + "a" * 96, None, 400, "DIGEST_INVALID"),
        ("/v2/team/app/blobs/sha512:" + "a" * 64, None, 400, "DIGEST_INVALID"),
        # A reference that is neither tag nor digest: a manifest that cannot exist (the conformance suite's 404).
        ("/v2/team/app/manifests/.hidden", None, 404, "MANIFEST_UNKNOWN"),
        ("/v2/team/app/manifests/" + "t" * 129, None, 404, "MANIFEST_UNKNOWN"),
        ("/v2/team/app/referrers/v1", None, 400, "DIGEST_INVALID"),
        ("/v2/team/app/tags", None, 404, "NAME_UNKNOWN"),
        ("/v2/not_a_host/_catalog", None, 404, "NAME_UNKNOWN"),
        ("/v2/team/app/manifests/", None, 404, "NAME_UNKNOWN"),
        ("/v2/manifests/v1", None, 404, "NAME_UNKNOWN"),
        # invalid names are refused before any registry is looked at, even an unknown one
        ("/v2/Bad/manifests/v1", "unknown.example.test", 400, "NAME_INVALID"),
    ],
)
def test_malformed_requests(path: str, ns: str | None, status: int, code: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_target(path, ns, config())
    assert (caught.value.status, caught.value.error.code) == (status, code)


@pytest.mark.parametrize(
    ("path", "ns"),
    [
        ("/v2/team/app/manifests/v1", "unknown.example.test"),
        ("/v2/team/app/manifests/v1", "127.0.0.1:5001"),  # a configured host, another port
        ("/v2/team/app/manifests/v1", "169.254.169.254"),
        ("/v2/team/app/manifests/v1", "http://registry.example.test"),
        ("/v2/team/app/manifests/v1", "registry.example.test/../x"),
        ("/v2/team/app/manifests/v1", "user@registry.example.test"),
        ("/v2/team/app/manifests/v1", "registry.example.test\r\nHost: x"),
        ("/v2/unknown.example.test/app/manifests/v1", None),
        ("/v2/localhost:8080/app/manifests/v1", None),
        ("/v2/unknown.example.test/_catalog", None),
        ("/v2/_catalog", "unknown.example.test"),
        ("/v2/unknown.example.test/app/tags/list", None),
        ("/v2/10.0.0.1:80/app/blobs/" + DIGEST, None),
    ],
)
def test_no_open_relay(path: str, ns: str | None) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_target(path, ns, config())
    assert (caught.value.status, caught.value.error.code) == (403, "DENIED")


def test_allow_patterns_admit_unconfigured_registries_over_https() -> None:
    allowing = config(allow=["*.mirror-ok.test", "localhost:*"])
    admitted = resolve_registry("team.mirror-ok.test", allowing)
    assert (admitted.name, admitted.url, admitted.has_credentials) == (
        "team.mirror-ok.test",
        "https://team.mirror-ok.test",
        False,
    )
    assert resolve_registry("localhost:8443", allowing).url == "https://localhost:8443"
    for refused in ("mirror-ok.test", "team.mirror-ok.test.evil.test", "team.mirror-ok.test:443", "x/y.mirror-ok.test"):
        with pytest.raises(RegistryError):
            resolve_registry(refused, allowing)


def test_docker_hub_aliases_reach_the_configured_docker_hub() -> None:
    hub = UpstreamRegistry(name="docker.io", url="http://127.0.0.1:5000", library_prefix=True)
    custom = ProxyConfig(registries={"docker.io": hub})
    for alias in ("docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"):
        assert resolve_registry(alias, custom) is hub
    without_hub = ProxyConfig(registries={PRIVATE.name: PRIVATE}, default_registry=PRIVATE.name)
    with pytest.raises(RegistryError):
        resolve_registry("docker.io", without_hub)
