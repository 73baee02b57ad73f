"""`damselfly configure`: merging into existing client configuration, without sockets or daemons."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from damselfly.cli import main
from damselfly.client_configs import (
    ConfigureError,
    check_mirror,
    check_registry,
    merge_daemon_json,
    merge_hosts_toml,
    merge_registries_dropin,
)
from damselfly.configure import plan

MIRROR = "http://127.0.0.1:65001"


# --- daemon.json -------------------------------------------------------------------------------------------


def test_daemon_json_is_created() -> None:
    assert json.loads(merge_daemon_json(None, MIRROR)) == {
        "registry-mirrors": [MIRROR],
        "insecure-registries": ["127.0.0.1:65001"],
    }


def test_daemon_json_keeps_every_other_key_and_mirror() -> None:
    old = json.dumps(
        {
            "log-level": "warn",
            "registry-mirrors": ["https://mirror.gcr.io"],
            "insecure-registries": ["10.0.0.5:5000"],
            "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}],
        }
    )
    new = json.loads(merge_daemon_json(old, MIRROR))
    assert new == {
        "log-level": "warn",
        "registry-mirrors": [MIRROR, "https://mirror.gcr.io"],  # ours first: dockerd tries them in order
        "insecure-registries": ["10.0.0.5:5000", "127.0.0.1:65001"],
        "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}],
    }


def test_daemon_json_unchanged_when_already_configured() -> None:
    old = '{"registry-mirrors": ["http://127.0.0.1:65001/"], "insecure-registries": ["127.0.0.1:65001"]}'
    assert merge_daemon_json(old, MIRROR) is old
    once = merge_daemon_json('{"debug": true}', MIRROR)
    assert merge_daemon_json(once, MIRROR) is once


def test_daemon_json_https_mirror_is_not_insecure() -> None:
    assert json.loads(merge_daemon_json("", "https://mirror.local:5000")) == {
        "registry-mirrors": ["https://mirror.local:5000"]
    }


@pytest.mark.parametrize("old", ["{not json", "[]", '{"registry-mirrors": "http://x"}', '{"insecure-registries": [1]}'])
def test_daemon_json_that_cannot_be_merged_is_refused(old: str) -> None:
    with pytest.raises(ConfigureError):
        merge_daemon_json(old, MIRROR)


# --- hosts.toml ----------------------------------------------------------------------------------------------


def test_hosts_toml_is_created() -> None:
    text = merge_hosts_toml(None, "registry.example.test", MIRROR)
    parsed = tomllib.loads(text)
    assert parsed == {
        "server": "https://registry.example.test",
        "host": {MIRROR: {"capabilities": ["pull", "resolve"]}},
    }
    assert tomllib.loads(merge_hosts_toml(None, "docker.io", MIRROR))["server"] == "https://registry-1.docker.io"
    # _default serves every registry: no server line, containerd uses the one the image names
    assert "server" not in tomllib.loads(merge_hosts_toml(None, "_default", MIRROR))


def test_hosts_toml_gets_the_mirror_first_and_keeps_the_rest() -> None:
    old = (
        "# our own mirror setup\n"
        'server = "https://registry.example.test"\n'
        "\n"
        '[host."https://cache.internal:5000"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        '  ca = "/etc/certs/cache.pem"\n'
    )
    new = merge_hosts_toml(old, "registry.example.test", MIRROR)
    assert new.startswith("# our own mirror setup\n")
    assert new.endswith(old[old.index("[host.") :])
    parsed = tomllib.loads(new)
    assert list(parsed["host"]) == [MIRROR, "https://cache.internal:5000"]
    assert parsed["host"]["https://cache.internal:5000"]["ca"] == "/etc/certs/cache.pem"
    assert parsed["server"] == "https://registry.example.test"
    assert merge_hosts_toml(new, "registry.example.test", MIRROR) is new


def test_hosts_toml_without_hosts_gets_ours_appended() -> None:
    old = 'server = "https://registry.example.test"\nskip_verify = false'
    parsed = tomllib.loads(merge_hosts_toml(old, "registry.example.test", MIRROR))
    assert parsed["skip_verify"] is False
    assert list(parsed["host"]) == [MIRROR]


@pytest.mark.parametrize("old", ["server = ", 'host = { "http://x" = { capabilities = ["pull"] } }', "host = 3"])
def test_hosts_toml_that_cannot_be_merged_is_refused(old: str) -> None:
    with pytest.raises(ConfigureError):
        merge_hosts_toml(old, "registry.example.test", MIRROR)


# --- registries.conf.d drop-in -----------------------------------------------------------------------------


def test_dropin_is_created_with_host_prefix_locations() -> None:
    parsed = tomllib.loads(merge_registries_dropin(None, ["docker.io", "registry.example.test"], MIRROR))
    assert parsed["registry"] == [
        {"prefix": "docker.io", "location": "docker.io",
         "mirror": [{"location": "127.0.0.1:65001/docker.io", "insecure": True}]},
        {"prefix": "registry.example.test", "location": "registry.example.test",
         "mirror": [{"location": "127.0.0.1:65001/registry.example.test", "insecure": True}]},
    ]  # fmt: skip


def test_dropin_keeps_other_registries_and_their_mirrors() -> None:
    old = (
        'unqualified-search-registries = ["docker.io"]\n'
        "[[registry]]\n"
        'prefix = "quay.io"\n'
        'location = "quay.io"\n'
        "[[registry]]\n"
        'prefix = "registry.example.test"\n'
        'location = "registry.example.test"\n'
        "[[registry.mirror]]\n"
        'location = "cache.internal:5000"\n'
    )
    new = merge_registries_dropin(old, ["registry.example.test"], "https://127.0.0.1:65001")
    parsed = tomllib.loads(new)
    assert parsed["unqualified-search-registries"] == ["docker.io"]
    assert parsed["registry"][0] == {"prefix": "quay.io", "location": "quay.io"}
    assert parsed["registry"][1]["mirror"] == [
        {"location": "127.0.0.1:65001/registry.example.test"},  # https: not insecure
        {"location": "cache.internal:5000"},
    ]
    assert merge_registries_dropin(new, ["registry.example.test"], "https://127.0.0.1:65001") is new
    # A later run for another registry adds it and keeps the first.
    more = tomllib.loads(merge_registries_dropin(new, ["docker.io"], "https://127.0.0.1:65001"))
    assert [entry["prefix"] for entry in more["registry"]] == ["quay.io", "registry.example.test", "docker.io"]


@pytest.mark.parametrize("old", ["[[registry]\n", "registry = 5", '[[registry]]\nprefix = "x.test"\nmirror = 3'])
def test_dropin_that_cannot_be_merged_is_refused(old: str) -> None:
    with pytest.raises(ConfigureError):
        merge_registries_dropin(old, ["x.test"], MIRROR)


# --- inputs, paths, the command --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["127.0.0.1:65001", "ftp://x:1", "http://", "http://x:1/path", "http://x:1/?a=b"])
def test_bad_mirror_urls(url: str) -> None:
    with pytest.raises(ConfigureError):
        check_mirror(url)


@pytest.mark.parametrize("name", ["not a host", "x/y.test", 'quo"te.test', "-bad.test", ""])
def test_bad_registry_names(name: str) -> None:
    with pytest.raises(ConfigureError):
        check_registry(name)


def test_plan_paths_under_root(tmp_path: Path) -> None:
    docker = plan("docker", MIRROR, ["docker.io"], tmp_path)
    assert [c.path for c in docker] == [tmp_path / "etc/docker/daemon.json"]
    containerd = plan("containerd", MIRROR, ["registry.example.test"], tmp_path)
    assert [c.path for c in containerd] == [
        tmp_path / "etc/containerd/certs.d/_default/hosts.toml",
        tmp_path / "etc/containerd/certs.d/registry.example.test/hosts.toml",
    ]
    podman = plan("podman", MIRROR, ["docker.io"], tmp_path, tmp_path / "mine.conf")
    assert [c.path for c in podman] == [tmp_path / "mine.conf"]
    assert all(c.old is None and c.changed for c in docker + containerd + podman)


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configure", "containerd", "--root", str(tmp_path), "--dry-run", "--registry", "r.example.test"]) == 0
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr().out
    assert f"would write {tmp_path}/etc/containerd/certs.d/r.example.test/hosts.toml:" in out
    assert f'[host."{MIRROR}"]' in out


def test_configure_merges_into_files_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon_json = tmp_path / "etc/docker/daemon.json"
    daemon_json.parent.mkdir(parents=True)
    daemon_json.write_text('{"data-root": "/srv/docker"}\n')
    daemon_json.chmod(0o600)
    args = ["configure", "docker", "--root", str(tmp_path), "--mirror", "http://10.1.2.3:65001"]
    assert main(args) == 0
    assert json.loads(daemon_json.read_text()) == {
        "data-root": "/srv/docker",
        "registry-mirrors": ["http://10.1.2.3:65001"],
        "insecure-registries": ["10.1.2.3:65001"],
    }
    assert daemon_json.stat().st_mode & 0o777 == 0o600
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"unchanged {daemon_json}"
    assert [p.name for p in daemon_json.parent.iterdir()] == ["daemon.json"]  # no temporary file left


def test_configure_takes_mirror_and_registries_from_the_damselfly_config(tmp_path: Path) -> None:
    config = tmp_path / "damselfly.toml"
    config.write_text(
        '[proxy]\nlisten = "0.0.0.0:7000"\n\n[[registry]]\nname = "r.example.test"\nurl = "https://r.example.test"\n'
    )
    assert main(["configure", "podman", "--config", str(config), "--root", str(tmp_path / "root")]) == 0
    dropin = tmp_path / "root/etc/containers/registries.conf.d/90-damselfly.conf"
    entries = tomllib.loads(dropin.read_text())["registry"]
    assert [(e["prefix"], e["mirror"][0]["location"]) for e in entries] == [
        ("r.example.test", "127.0.0.1:7000/r.example.test")
    ]


def test_configure_refuses_to_clobber_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon_json = tmp_path / "etc/docker/daemon.json"
    daemon_json.parent.mkdir(parents=True)
    daemon_json.write_text("{broken")
    assert main(["configure", "docker", "--root", str(tmp_path)]) == 1
    assert daemon_json.read_text() == "{broken"
    assert "not valid JSON" in capsys.readouterr().err
