"""Settings declared once: the flags, the TOML keys and the README's table all come from the config dataclasses."""

from __future__ import annotations

import argparse
import ipaddress
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from core.setting import SETTING
from damselfly import flags, settings
from damselfly.cli import build_parser
from peer.config import PeerConfig
from proxy.config import ProxyConfig
from supernode.config import SupernodeConfig

REGISTRY = {"name": "r.test", "url": "https://r.test"}
README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- generated: damselfly settings begin -->\n", "<!-- generated: damselfly settings end -->"


def test_the_readme_table_is_what_the_dataclasses_declare() -> None:
    text = README.read_text()
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert table == flags.markdown(settings.ALL), "rerun `damselfly settings` and paste it into README.md"


def test_every_declared_flag_is_offered_by_its_command() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert isinstance(choices, dict)
    commands: dict[str, argparse.ArgumentParser] = choices
    for command, sections in settings.COMMANDS.items():
        offered = set(commands[command]._option_string_actions)
        for section in sections:
            for entry in section.entries():
                if entry.flag is not None:
                    assert entry.flag in offered, (command, entry.flag)
    # The two listeners of `up` keep their own flags, and `up` dials its own supernode.
    up = set(commands["up"]._option_string_actions)
    assert {"--listen", "--supernode-listen"} <= up and "--supernode" not in up


def test_every_config_setting_has_a_toml_key_or_a_flag_and_the_example_file_reads_back_as_the_defaults() -> None:
    for config in (SupernodeConfig, PeerConfig, ProxyConfig):
        for item in fields(config):
            declared = item.metadata.get(SETTING)
            assert declared is None or declared.key or declared.flag
    example = tomllib.loads(flags.toml_example(settings.ALL))
    args = build_parser().parse_args(["up"])
    built = settings.build(args, example)
    assert built.supernode == SupernodeConfig()
    # `up`'s peer dials its own supernode; everything else is the default.
    assert built.peer == PeerConfig(supernode_url="http://127.0.0.1:8002")
    assert built.proxy == ProxyConfig()


def test_toml_keys_set_the_fields_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAMSELFLY_JOIN_TOKEN", raising=False)
    in_file, in_flag = tmp_path / "token", tmp_path / "flag-token"
    in_file.write_text("from-file\n")
    in_flag.write_text("x")
    conf = {
        "supernode": {"listen": "127.0.0.1:9002", "join_token_file": str(in_file)},
        "peer": {
            "supernode": ["http://a:8002", "http://b:8002"],
            "upload_listen": "10.0.0.1:7000",
            "data_dir": str(tmp_path),
            "labels": {"zone": "z1", "rack": "r1"},
            "upload_rate": "8Mbit",
            "supernode_timeout": 3,
            "join_token_file": str(in_file),
        },
        "proxy": {"listen": "127.0.0.1:6000", "prefetch": False, "allow": ["*.example.com"], "tls_cert": "c"},
    }
    parse = build_parser().parse_args
    peer, proxy = settings.peer_configs(parse(["peer"]), conf)
    assert (peer.supernode_url, peer.upload_host, peer.upload_port) == ("http://a:8002,http://b:8002", "10.0.0.1", 7000)
    assert (peer.data_dir, peer.labels, peer.upload_rate) == (tmp_path, {"zone": "z1", "rack": "r1"}, 1e6)
    assert (peer.register_timeout, peer.join_token) == (3.0, "from-file")
    assert (proxy.listen_port, proxy.prefetch, proxy.allow, proxy.tls_cert) == (6000, False, ["*.example.com"], "c")

    argv = ["peer", "--supernode", "http://c:8002", "--upload-listen", "0.0.0.0:7001", "--label", "rack=r2",
            "--upload-rate", "16Mbit", "--supernode-timeout", "4", "--listen", "127.0.0.1:6001",
            "--join-token-file", str(in_flag)]
    peer, proxy = settings.peer_configs(parse(argv), conf)
    assert (peer.supernode_url, peer.upload_port, peer.upload_rate) == ("http://c:8002", 7001, 2e6)
    assert peer.labels == {"zone": "z1", "rack": "r2"}  # flags are merged over the file's table
    assert (peer.register_timeout, peer.join_token, proxy.listen_port) == (4.0, "x", 6001)

    up = settings.build(parse(["up", "--supernode-listen", "127.0.0.1:9003"]), conf)
    assert (up.supernode.listen_port, up.supernode.join_token) == (9003, "from-file")
    assert up.peer.supernode_url == "http://127.0.0.1:9003"
    assert settings.build(parse(["up", "--no-prefetch"]), {}).proxy.prefetch is False


def test_the_join_token_comes_from_the_environment_over_the_file_and_the_flag_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAMSELFLY_JOIN_TOKEN", "from-env")
    (tmp_path / "toml").write_text("from-toml")
    (tmp_path / "flag").write_text("from-flag")
    conf = {"supernode": {"join_token_file": str(tmp_path / "toml")}}
    parse = build_parser().parse_args
    assert settings.build(parse(["supernode"]), conf).supernode.join_token == "from-env"
    flag = ["supernode", "--join-token-file", str(tmp_path / "flag")]
    assert settings.build(parse(flag), conf).supernode.join_token == "from-flag"
    monkeypatch.delenv("DAMSELFLY_JOIN_TOKEN")
    assert settings.build(parse(["supernode"]), conf).supernode.join_token == "from-toml"


@pytest.mark.parametrize(
    ("argv", "conf", "message"),
    [
        (["supernode", "--listen", "nowhere"], {}, "--listen: expected HOST:PORT, got 'nowhere'"),
        (["supernode"], {"supernode": {"listen": "8002"}}, "[supernode] listen: expected HOST:PORT, got '8002'"),
        (["peer", "--upload-rate", "fast"], {}, "--upload-rate: not a rate"),
        (["peer"], {"peer": {"disk_quota": "lots"}}, "[peer] disk_quota: not a size"),
        (["peer", "--supernode", "sn:8002"], {}, "--supernode: expected URLs like"),
        (["peer", "--label", "zone"], {}, "--label: expected KEY=VALUE, got 'zone'"),
        (["peer"], {"proxy": {"allow": "*"}}, "[proxy] allow must be a list of host patterns"),
        (["peer"], {"peer": "x"}, "[peer] must be a table"),
        (["peer"], {"registry": [{**REGISTRY, "redirect_networks": ["storage"]}]},
         "[[registry]] r.test: redirect_networks: expected CIDRs like 10.0.0.0/8[,fd00::/8], got 'storage'"),
        (["peer"], {"registry": [{**REGISTRY, "redirect_networks": [8]}]},
         "[[registry]] r.test: redirect_networks: expected CIDRs like"),
    ],
)
def test_a_bad_value_names_where_it_came_from(argv: list[str], conf: dict[str, object], message: str) -> None:
    with pytest.raises(settings.SettingsError) as raised:
        settings.build(build_parser().parse_args(argv), conf)
    assert str(raised.value).startswith(message)


def test_a_registry_takes_its_redirect_networks() -> None:
    # Read as peer_networks are: host bits are dropped, a comma-separated string is a list too.
    networks = ["10.20.3.4/16", "fd00::/8"]
    conf = {"registry": [{**REGISTRY, "redirect_networks": networks}, {"name": "o", "url": "http://o"}]}
    found = {registry.name: registry for registry in settings.registries_from(conf)}
    assert found["r.test"].redirect_networks == (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/8"))
    assert found["o"].redirect_networks == ()
