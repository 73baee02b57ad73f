"""`damselfly supernode | peer | up`: parse flags and a config file, wire the packages, run until a signal."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import uvicorn
import uvloop

from bench import cli as bench_cli
from peer.config import PeerConfig
from peer.quota import QuotaPolicy, parse_size
from peer.ratelimit import parse_rate
from peer.service import PeerService, StartupError
from peer.upstream import UpstreamRegistry
from proxy.app import create_app as create_proxy_app
from proxy.config import DOCKER_HUB, ProxyConfig
from supernode.config import SupernodeConfig
from supernode.server import create_app as create_supernode_app

from . import configure, settings
from .serving import BindError, bind, make_server, setup_logging, wait_started
from .settings import SettingsError, host_port

DEFAULT_SUPERNODE_LISTEN = "0.0.0.0:8002"
DEFAULT_PROXY_LISTEN = "127.0.0.1:65001"
DEFAULT_UPLOAD_LISTEN = "0.0.0.0:65002"


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/damselfly"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "damselfly")


class _Parser(argparse.ArgumentParser):
    """Flag errors as one line, as operators grep logs for them; `--help` still has the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="damselfly", description="Peer-to-peer container image distribution.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", help="TOML configuration file (flags win over it)")
        sub.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        sub.add_argument(
            "--join-token",
            default=os.environ.get("DAMSELFLY_JOIN_TOKEN"),
            help="shared secret of the cluster (default: $DAMSELFLY_JOIN_TOKEN)",
        )

    sn = commands.add_parser("supernode", help="run the swarm coordinator")
    sn.add_argument("--listen", default=None, help=f"HOST:PORT (default {DEFAULT_SUPERNODE_LISTEN})")
    common(sn)

    def peer_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--listen", default=None, help=f"registry mirror HOST:PORT (default {DEFAULT_PROXY_LISTEN})")
        sub.add_argument(
            "--upload-listen", default=None, help=f"upload server HOST:PORT (default {DEFAULT_UPLOAD_LISTEN})"
        )
        sub.add_argument("--data-dir", default=None, help="piece store (default /var/lib/damselfly as root)")
        sub.add_argument("--upstream", default=None, help="default upstream registry URL (default Docker Hub)")
        sub.add_argument("--advertise", default=None, help="host other peers dial (default: as the supernode sees us)")
        sub.add_argument("--label", action="append", default=[], help="KEY=VALUE locality label (zone, rack)")
        for kind, what in (
            ("upload", "serving pieces to peers"),
            ("download", "fetching pieces from peers"),
            ("source", "fetching from the upstream"),
        ):
            sub.add_argument(
                f"--{kind}-rate", default=None, help=f"limit for {what}, e.g. 100Mbit, 50MB (default none)"
            )
        # The store's disk quota (peer/quota.py); also disk_quota, disk_high_watermark, disk_low_watermark in [peer].
        sub.add_argument("--disk-quota", default=None, help="most the store may hold, e.g. 10GiB, 500GB (default none)")
        sub.add_argument(
            "--disk-high-watermark", type=float, default=None, help="fraction of the quota that starts eviction (0.9)"
        )
        sub.add_argument(
            "--disk-low-watermark", type=float, default=None, help="fraction of the quota eviction goes down to (0.8)"
        )
        sub.add_argument(
            "--no-prefetch", action="store_true", help="do not start an image's blobs when its manifest is served"
        )
        common(sub)

    pe = commands.add_parser("peer", help="run the registry mirror and the peer on this host")
    pe.add_argument(
        "--supernode",
        default=None,
        help="supernode URL, e.g. http://10.0.0.1:8002; several, comma-separated, share the swarms out by digest "
        "(give every peer the same list)",
    )
    pe.add_argument(
        "--supernode-timeout", type=float, default=15.0, help="seconds to keep trying the supernode at start-up"
    )
    peer_flags(pe)

    up = commands.add_parser("up", help="a supernode and a peer in one process, for a single host")
    up.add_argument("--supernode-listen", default=None, help=f"HOST:PORT (default {DEFAULT_SUPERNODE_LISTEN})")
    peer_flags(up)
    configure.add_parser(commands)
    bench_cli.add_commands(commands)
    return parser


PeerFactory = Callable[[PeerConfig], PeerService]


def main(argv: Sequence[str] | None = None, *, peer_factory: PeerFactory = PeerService) -> int:
    """Run one command; `peer_factory` lets a test entry point (tests/support/faulty_peer.py) wire a faulty peer."""
    args = build_parser().parse_args(argv)
    if args.command in bench_cli.COMMANDS:
        # The benchmark is most of the code base: imported only when it runs, not at every start of a daemon.
        from bench import command as bench_command

        return bench_command.run(args)
    setup_logging(args.log_level)
    try:
        conf = settings.load(args.config)
        if args.command == "configure":
            return configure.run(args, conf)
        if args.command == "supernode":
            # A supernode process alone runs on uvloop: 1.3-1.6x less CPU per request (docs/benchmarks.md). Peers and
            # `up` stay on asyncio's loop, whose loop.sendfile they need.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(_run_supernode(supernode_config(args, conf)))
        if args.command == "peer":
            peer_config, proxy_config = peer_configs(args, conf)
            return asyncio.run(_run_peer(peer_config, proxy_config, None, peer_factory))
        if args.command == "up":
            sn_config = supernode_config(args, conf, listen=args.supernode_listen)
            # The peer of `up` always talks to its own supernode (over loopback when it listens everywhere).
            sn_host = sn_config.listen_host if sn_config.listen_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            args.supernode = f"http://{sn_host}:{sn_config.listen_port}"
            peer_config, proxy_config = peer_configs(args, conf)
            return asyncio.run(_run_peer(peer_config, proxy_config, sn_config, peer_factory))
    except (SettingsError, BindError, StartupError) as exc:
        print(f"damselfly {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def supernode_config(args: argparse.Namespace, conf: dict[str, Any], listen: str | None = None) -> SupernodeConfig:
    section = settings.section(conf, "supernode")
    listen_text = (listen if args.command == "up" else args.listen) or section.get("listen", DEFAULT_SUPERNODE_LISTEN)
    host, port = host_port(str(listen_text), "--listen")
    token = args.join_token if args.join_token is not None else str(section.get("join_token", ""))
    return SupernodeConfig(listen_host=host, listen_port=port, join_token=token)


def peer_configs(args: argparse.Namespace, conf: dict[str, Any]) -> tuple[PeerConfig, ProxyConfig]:
    peer_section = settings.section(conf, "peer")
    proxy_section = settings.section(conf, "proxy")
    upload_host, upload_port = host_port(
        args.upload_listen or peer_section.get("upload_listen", DEFAULT_UPLOAD_LISTEN), "--upload-listen"
    )
    listen_host, listen_port = host_port(args.listen or proxy_section.get("listen", DEFAULT_PROXY_LISTEN), "--listen")
    labels = dict(peer_section.get("labels", {}))
    for label in args.label:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise SettingsError(f"--label: expected KEY=VALUE, got {label!r}")
        labels[key] = value
    configured = peer_section.get("supernode", "")
    # Several supernode processes share the swarms out (supernode/shards.py): a list, or URLs joined by commas.
    listed = ",".join(map(str, configured)) if isinstance(configured, list) else str(configured)
    supernode_url = args.supernode or listed
    for url in supernode_url.split(","):
        if supernode_url and not url.strip().startswith(("http://", "https://")):
            raise SettingsError(f"--supernode: expected URLs like http://host:8002[,http://host2:8002], got {url!r}")
    token = args.join_token if args.join_token is not None else str(peer_section.get("join_token", ""))
    peer_config = PeerConfig(
        data_dir=Path(args.data_dir or peer_section.get("data_dir") or default_data_dir()),
        supernode_url=supernode_url,
        upload_host=upload_host,
        upload_port=upload_port,
        advertise_host=args.advertise or str(peer_section.get("advertise", "")),
        join_token=token,
        labels={str(k): str(v) for k, v in labels.items()},
        upload_rate=_rate(args.upload_rate, peer_section.get("upload_rate"), "--upload-rate"),
        download_rate=_rate(args.download_rate, peer_section.get("download_rate"), "--download-rate"),
        source_rate=_rate(args.source_rate, peer_section.get("source_rate"), "--source-rate"),
        register_timeout=getattr(args, "supernode_timeout", 15.0),
        **_quota(args, peer_section),
    )
    registries = {r.name: r for r in settings.registries(conf)}
    default = str(proxy_section.get("default_registry", ""))
    if args.upstream:
        upstream = upstream_registry(args.upstream)
        registries.setdefault(upstream.name, upstream)
        default = upstream.name
    if not default:
        default = DOCKER_HUB.name
    if default == DOCKER_HUB.name:
        registries.setdefault(DOCKER_HUB.name, DOCKER_HUB)
    if default not in registries:
        raise SettingsError(f"default_registry {default!r} is not a configured [[registry]]")
    allow = proxy_section.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise SettingsError("[proxy] allow must be a list of host patterns")
    proxy_config = ProxyConfig(
        listen_host=listen_host,
        listen_port=listen_port,
        default_registry=default,
        registries=registries,
        allow=list(allow),
        tls_cert=str(proxy_section.get("tls_cert", "")),
        tls_key=str(proxy_section.get("tls_key", "")),
        prefetch=not args.no_prefetch and bool(proxy_section.get("prefetch", True)),
    )
    return peer_config, proxy_config


def _quota(args: argparse.Namespace, section: dict[str, Any]) -> dict[str, Any]:
    """The disk quota fields of PeerConfig from flags, else the [peer] section, else the defaults."""
    text = args.disk_quota if args.disk_quota is not None else str(section.get("disk_quota", "") or "")
    try:
        limit = parse_size(text)
    except ValueError as exc:
        raise SettingsError(f"--disk-quota: {exc}") from None
    high = args.disk_high_watermark if args.disk_high_watermark is not None else section.get("disk_high_watermark", 0.9)
    low = args.disk_low_watermark if args.disk_low_watermark is not None else section.get("disk_low_watermark", 0.8)
    try:
        policy = QuotaPolicy(limit, float(high), float(low))
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"--disk-high-watermark/--disk-low-watermark: {exc}") from None
    return {"disk_quota": policy.limit, "disk_high_watermark": policy.high, "disk_low_watermark": policy.low}


def _rate(flag: str | None, configured: object, what: str) -> float:
    text = flag if flag is not None else str(configured or "")
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise SettingsError(f"{what}: {exc}") from exc


def upstream_registry(url: str) -> UpstreamRegistry:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"--upstream: expected a URL like https://registry.example.com, got {url!r}")
    if parts.hostname in ("registry-1.docker.io", "index.docker.io", "docker.io"):
        return DOCKER_HUB
    return UpstreamRegistry(name=parts.netloc.lower(), url=f"{parts.scheme}://{parts.netloc}")


async def _run_until_signal(servers: list[uvicorn.Server], tasks: list[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()


async def _run_supernode(config: SupernodeConfig) -> int:
    sock = bind(config.listen_host, config.listen_port)
    server = make_server(create_supernode_app(config), zerocopy=False)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server)
    print(f"damselfly supernode: listening on http://{config.listen_host}:{config.listen_port}", flush=True)
    await _run_until_signal([server], [task])
    return 0


async def _run_peer(
    peer_config: PeerConfig, proxy_config: ProxyConfig, supernode: SupernodeConfig | None, peer_factory: PeerFactory
) -> int:
    servers: list[uvicorn.Server] = []
    tasks: list[asyncio.Task[None]] = []
    if supernode is not None:
        sn_sock = bind(supernode.listen_host, supernode.listen_port)
        sn_server = make_server(create_supernode_app(supernode), zerocopy=False)
        servers.append(sn_server)
        tasks.append(asyncio.create_task(sn_server.serve(sockets=[sn_sock])))
        await wait_started(sn_server)
        print(f"damselfly supernode: listening on http://{supernode.listen_host}:{supernode.listen_port}", flush=True)
    proxy_sock = bind(proxy_config.listen_host, proxy_config.listen_port)
    peer = peer_factory(peer_config)
    try:
        await peer.start()
        server = make_server(
            create_proxy_app(proxy_config, peer), tls_cert=proxy_config.tls_cert, tls_key=proxy_config.tls_key
        )
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[proxy_sock])))
        await wait_started(server)
        scheme = "https" if proxy_config.tls_cert else "http"
        print(
            f"damselfly peer {peer.peer_id}: registry mirror on {scheme}://{proxy_config.listen_host}:"
            f"{proxy_config.listen_port}, uploads on {peer_config.upload_host}:{peer.upload_port}, "
            f"default upstream {proxy_config.registries[proxy_config.default_registry].url}",
            flush=True,
        )
        await _run_until_signal(servers, tasks)
    finally:
        await peer.close()
    return 0
