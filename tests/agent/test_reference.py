"""How a job's image reference is resolved against the host's registries."""

from __future__ import annotations

import pytest

from agent.reference import BadReference, resolve_reference
from upstream.registry import UpstreamRegistry

HUB = UpstreamRegistry("docker.io", "https://registry-1.docker.io", library_prefix=True)
LOCAL = UpstreamRegistry("127.0.0.1:5000", "http://127.0.0.1:5000")
REGISTRIES = {"docker.io": HUB, "127.0.0.1:5000": LOCAL}
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "reference"),
    [
        ("alpine", HUB, "library/alpine", "latest"),
        ("team/app:1.4", HUB, "team/app", "1.4"),
        ("index.docker.io/team/app", HUB, "team/app", "latest"),
        ("127.0.0.1:5000/team/app:v2", LOCAL, "team/app", "v2"),
        (f"127.0.0.1:5000/team/app@{DIGEST}", LOCAL, "team/app", DIGEST),
        (f"team/app:1.4@{DIGEST}", HUB, "team/app", DIGEST),
    ],
)
def test_a_reference_names_its_registry_repository_and_tag_or_digest(
    text: str, registry: UpstreamRegistry, repository: str, reference: str
) -> None:
    resolved = resolve_reference(text, REGISTRIES, "docker.io")
    assert (resolved.registry, resolved.repository, resolved.reference) == (registry, repository, reference)


def test_a_registry_not_configured_on_the_host_is_refused_by_name() -> None:
    with pytest.raises(BadReference, match=r"registry quay\.io is not configured on this host"):
        resolve_reference("quay.io/team/app:1", REGISTRIES, "docker.io")
