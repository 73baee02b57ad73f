"""Which container runtime pulls a `runtime` job's image on this host, and the commands it is given.

`--runtime-pull COMMAND` wins (`{reference}` in it is the image, named with its registry). Else the first runtime
found: docker (its socket at `$DOCKER_HOST` or /var/run/docker.sock, as the docker CLI looks), containerd (`ctr`
in the `k8s.io` namespace, its socket at `$CONTAINERD_ADDRESS` or /run/containerd/containerd.sock, as ctr looks,
with the hosts directory `damselfly configure containerd` writes), podman.

docker is the one that cannot be handed the image's own name: dockerd applies `registry-mirrors` to Docker Hub
names only, and pulls any other registry's image straight from that registry, the swarm bypassed and the job
"succeeded" all the same. So a Docker Hub image is pulled by its name (`damselfly configure docker` points the
mirrors at this host's), and any other is pulled from this host's mirror as a registry, the image's registry the
first path component (`127.0.0.1:65001/registry.example.com/team/app:1.4`, routed by proxy/routing.py), then
tagged with its own name and the mirror's name removed. dockerd counts 127.0.0.0/8 as an insecure registry, so a
mirror on loopback needs nothing more.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .failure import JobFailed
from .reference import DOCKER_HUB_ALIASES, ImageReference

DOCKER_SOCKET = "/var/run/docker.sock"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CERTS_D = "/etc/containerd/certs.d"
PODMAN = ("podman", "pull", "{reference}")
# A path component of a docker image name (distribution's reference grammar): a registry named with a port
# (`registry.example.com:5000`) cannot be one, so docker cannot name its images through the mirror.
DOCKER_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Step:
    # What the step is, for its error (`docker tag`, `ctr pull`).
    what: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Runtime:
    # The command's words, `{reference}` among them; for docker, the CLI's words before its subcommand.
    command: tuple[str, ...]
    # The docker CLI: its commands depend on the image's registry (see the module's docstring).
    docker: bool = False


def containerd_pull(hosts_dir: str = CERTS_D) -> tuple[str, ...]:
    """ctr's pull: the registry traffic is ctr's own, and only `--hosts-dir` makes it read the hosts.toml files
    (containerd's `config_path` is the CRI plugin's, which ctr does not use)."""
    return ("ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir", hosts_dir, "{reference}")


def find_runtime(configured: Sequence[str], environ: Mapping[str, str] = os.environ) -> Runtime:
    """The configured command, else the first runtime this host has; raises JobFailed if none."""
    if configured:
        return Runtime(tuple(configured))
    if shutil.which("docker") and _socket_there(environ.get("DOCKER_HOST", ""), DOCKER_SOCKET):
        return Runtime(("docker",), docker=True)
    if shutil.which("ctr") and _socket_there(environ.get("CONTAINERD_ADDRESS", ""), CONTAINERD_SOCKET):
        return Runtime(containerd_pull())
    if shutil.which("podman"):
        return Runtime(PODMAN)
    raise JobFailed("no container runtime on this host (docker, containerd's ctr, podman): set --runtime-pull")


def _socket_there(address: str, default: str) -> bool:
    if address and not address.startswith(("unix://", "/")):
        return True  # tcp:// or ssh://: the operator pointed the client there, nothing to look at here
    return Path(address.removeprefix("unix://") or default).exists()


def runtime_name(image: ImageReference) -> str:
    """The image named with its registry, so the runtime's own mirror entry for that registry (this host's
    mirror) applies, whatever the runtime's default registry is."""
    return f"{image.registry.name}/{_repository_and_reference(image)}"


def pull_steps(runtime: Runtime, image: ImageReference, mirror_host: str) -> list[Step]:
    """The commands that leave `image` in the runtime under its own name, run in turn; `mirror_host` is this host's
    mirror as the runtime reaches it (`127.0.0.1:65001`). Raises JobFailed if the runtime cannot pull it through
    the mirror."""
    if not runtime.docker:
        name = runtime_name(image)
        program = Path(runtime.command[0]).name
        return [Step(f"{program} pull", tuple(part.replace("{reference}", name) for part in runtime.command))]
    docker = runtime.command
    if image.registry.name in DOCKER_HUB_ALIASES:
        return [Step("docker pull", (*docker, "pull", f"docker.io/{_repository_and_reference(image)}"))]
    registry = image.registry.name
    if not DOCKER_PATH_COMPONENT.fullmatch(registry):
        raise JobFailed(
            f"docker cannot pull from {registry[:200]} through this host's mirror (it mirrors Docker Hub only, and a "
            "registry named with a port cannot be a path of the mirror's): name the registry without a port in "
            "[[registry]], or set --runtime-pull"
        )
    if not mirror_host:
        raise JobFailed("docker pulls other registries than Docker Hub from the mirror, and its address is unknown")
    through = f"{mirror_host}/{registry}/{_repository_and_reference(image)}"
    if image.by_digest:
        # docker tags no digest: the image keeps the mirror's name (`docker run` takes it, or the image's id).
        return [Step("docker pull", (*docker, "pull", through))]
    return [
        Step("docker pull", (*docker, "pull", through)),
        Step("docker tag", (*docker, "tag", through, runtime_name(image))),
        # Only the name goes: the image stays, under its own name.
        Step("docker rmi", (*docker, "rmi", through)),
    ]


def _repository_and_reference(image: ImageReference) -> str:
    separator = "@" if image.by_digest else ":"
    return f"{image.repository}{separator}{image.reference}"
