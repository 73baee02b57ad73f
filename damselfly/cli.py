"""`damselfly supernode | peer | up | manager`: parse flags and a config file (damselfly/settings.py), wire the
packages, run until a signal; `settings`, `configure`, the platform's `login`, `logout`, `user` and `token`
(damselfly/control_cli.py), and the benchmark's `bench` and `simulate`."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import uvicorn
import uvloop

from agent.config import AgentConfig
from agent.service import Agent
from bench import cli as bench_cli
from manager.config import ManagerConfig
from peer.config import PeerConfig
from peer.service import PeerService, StartupError
from proxy.app import create_app as create_proxy_app
from proxy.config import ProxyConfig
from proxy.files import create_files_app
from supernode.config import SupernodeConfig
from supernode.directory import DirectoryError, DirectorySettings, SupernodeDirectory, redis_client
from supernode.job_board import JobBoard
from supernode.scheduler import Scheduler
from supernode.server import create_app as create_supernode_app

from . import cluster_secret, configure, control_cli, flags, get_cli, settings
from .serving import BindError, bind, make_server, setup_logging, wait_started
from .settings import SettingsError

PeerFactory = Callable[[PeerConfig], PeerService]


class _Parser(argparse.ArgumentParser):
    """Flag errors as one line, as operators grep logs for them; `--help` still has the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="damselfly", description="Peer-to-peer container image distribution.")
    commands = parser.add_subparsers(dest="command", required=True)
    # Every flag of these three comes from the settings the packages' config dataclasses declare (damselfly/flags.py).
    for name, what in (
        ("supernode", "run the swarm coordinator"),
        ("peer", "run the registry mirror and the peer on this host"),
        ("up", "a supernode and a peer in one process, for a single host"),
        ("manager", "run the platform's API (users, tokens, audit) alone, without a supernode"),
    ):
        flags.add_flags(commands.add_parser(name, help=what), settings.COMMANDS[name])
    described = commands.add_parser("settings", help="print every setting: flag, TOML key, default (Markdown)")
    described.add_argument("--toml", action="store_true", help="print a configuration file of every key at its default")
    configure.add_parser(commands)
    get_cli.add_parser(commands)
    control_cli.add_parsers(commands)
    bench_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, peer_factory: PeerFactory = PeerService) -> int:
    """Run one command; `peer_factory` lets a test entry point (tests/support/faulty_peer.py) wire a faulty peer."""
    args = build_parser().parse_args(argv)
    if args.command in bench_cli.COMMANDS:
        # The benchmark is most of the code base: imported only when it runs, not at every start of a daemon.
        from bench import command as bench_command

        return bench_command.run(args)
    if args.command == "settings":
        print(flags.toml_example(settings.ALL) if args.toml else flags.markdown(settings.ALL), end="")
        return 0
    if args.command in control_cli.COMMANDS:
        return control_cli.run(args)
    if args.command == get_cli.COMMAND:
        return get_cli.run(args)
    setup_logging(getattr(args, "log_level", None) or "info")
    try:
        conf = settings.load(getattr(args, "config", None))
        if args.command == "configure":
            return configure.run(args, conf)
        config = settings.build(args, conf)
        if args.command == "manager":
            return asyncio.run(_run_manager(config.manager))
        if args.command == "up":
            config = cluster_secret.with_up_secret(config)
        cluster_secret.check_listeners(args.command, config)
        if args.command == "supernode":
            # A supernode process alone runs on uvloop: 1.3-1.6x less CPU per request (docs/benchmarks.md). Peers and
            # `up` stay on asyncio's loop, whose loop.sendfile they need.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(_run_supernode(config.supernode, config.manager))
        supernode = config.supernode if args.command == "up" else None
        return asyncio.run(_run_peer(config.peer, config.proxy, supernode, peer_factory, config.manager))
    except (SettingsError, BindError, StartupError) as exc:
        print(f"damselfly {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run_until_signal(servers: list[uvicorn.Server], tasks: list[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        # The supernode answers its long-polls at once (supernode/server.py), so the stop need not wait them out.
        begin_stop = getattr(server.config.app, "begin_stop", None)
        if callable(begin_stop):
            begin_stop()
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()


def _supernode_server(config: SupernodeConfig, manager: ManagerConfig) -> uvicorn.Server:
    scheduler = Scheduler(config.scheduler_config())
    # The jobs the supernode carries to its hosts; the platform hosted here puts them in place, as it reads the
    # hosts from the scheduler.
    job_board = JobBoard()
    app = create_supernode_app(config, scheduler, job_board, _directory(config))
    if config.manager:
        # The platform on the supernode's port, for the paths the supernode does not route (damselfly/hosting.py).
        # Imported here: SQLAlchemy and Alembic cost a peer process 1.5 s of CPU at start for nothing.
        from manager.app import ManagerApp
        from manager.host_source import SchedulerSource
        from manager.job_channel import BoardChannel

        from . import hosting

        # It reads the hosts from this scheduler in place, and tells it the cordoned ones.
        app = hosting.host(app, ManagerApp(manager, SchedulerSource(scheduler), BoardChannel(job_board)))
    return make_server(
        app, tls_cert=config.tls_cert, tls_key=config.tls_key, client_ca=config.client_ca, zerocopy=False,
    )


def _directory(config: SupernodeConfig) -> SupernodeDirectory | None:
    """The supernode directory in Redis (supernode/directory.py) when `--redis` or `--redis-sentinel` is given."""
    if not config.directory:
        return None
    url = config.advertise_url
    if not url:
        if config.listen_host in ("0.0.0.0", "::", ""):
            raise SettingsError("--redis: give --advertise-url, the URL peers reach this supernode at (it listens "
                                f"on every address, {config.listen_host or '*'})")
        host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
        url = f"{_supernode_scheme(config)}://{host}:{config.listen_port}"
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"--advertise-url: {url[:100]!r} is not an http(s) URL")
    try:
        redis = redis_client(config.redis_url, config.redis_sentinel, config.redis_master, call_timeout=1.0)
    except DirectoryError as exc:
        raise SettingsError(str(exc)) from None
    return SupernodeDirectory(redis, DirectorySettings(url))


def _supernode_scheme(config: SupernodeConfig) -> str:
    return "https" if config.tls_cert else "http"


async def _run_manager(config: ManagerConfig) -> int:
    sock = bind(config.listen_host, config.listen_port)
    from manager.app import ManagerApp

    app = ManagerApp(config)
    # Alone, a database that cannot be opened is the end: the reason was logged, on one line.
    if not await app.startup():
        sock.close()
        print("damselfly manager: the platform's database cannot be opened (see the line above)", file=sys.stderr)
        return 1
    server = make_server(app, zerocopy=False)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server)
    print(f"damselfly manager: listening on http://{config.listen_host}:{config.listen_port}", flush=True)
    await _run_until_signal([server], [task])
    await app.shutdown()
    return 0


async def _run_supernode(config: SupernodeConfig, manager: ManagerConfig) -> int:
    # Built first: a directory setting that makes no sense is refused before anything listens.
    server = _supernode_server(config, manager)
    sock = bind(config.listen_host, config.listen_port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server)
    print(f"damselfly supernode: listening on {_supernode_scheme(config)}://{config.listen_host}:{config.listen_port}",
          flush=True)
    await _run_until_signal([server], [task])
    return 0


async def _run_peer(
    peer_config: PeerConfig, proxy_config: ProxyConfig, supernode: SupernodeConfig | None, peer_factory: PeerFactory,
    manager: ManagerConfig,
) -> int:
    servers: list[uvicorn.Server] = []
    tasks: list[asyncio.Task[None]] = []
    if supernode is not None:
        sn_sock = bind(supernode.listen_host, supernode.listen_port)
        sn_server = _supernode_server(supernode, manager)
        servers.append(sn_server)
        tasks.append(asyncio.create_task(sn_server.serve(sockets=[sn_sock])))
        await wait_started(sn_server)
        print(
            f"damselfly supernode: listening on {_supernode_scheme(supernode)}://{supernode.listen_host}:"
            f"{supernode.listen_port}", flush=True,
        )
    proxy_sock = bind(proxy_config.listen_host, proxy_config.listen_port)
    # The files endpoint, on loopback (proxy/files.py); port 0 turns it off.
    files_sock = bind(proxy_config.files_host, proxy_config.files_port) if proxy_config.files_port else None
    peer = peer_factory(peer_config)
    agent: Agent | None = None
    try:
        await peer.start()
        if peer_config.agent:
            # The jobs the platform gives this host (agent/): started once the peer is registered.
            agent = Agent(peer, _agent_config(proxy_config, peer_config))
            await agent.start()
        server = make_server(
            create_proxy_app(proxy_config, peer), tls_cert=proxy_config.tls_cert, tls_key=proxy_config.tls_key
        )
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[proxy_sock])))
        await wait_started(server)
        if files_sock is not None:
            files_server = make_server(create_files_app(proxy_config, peer))
            servers.append(files_server)
            tasks.append(asyncio.create_task(files_server.serve(sockets=[files_sock])))
            await wait_started(files_server)
        scheme = "https" if proxy_config.tls_cert else "http"
        print(
            f"damselfly peer {peer.peer_id}: registry mirror on {scheme}://{proxy_config.listen_host}:"
            f"{proxy_config.listen_port}, uploads on {peer_config.upload_host}:{peer.upload_port}, "
            f"default upstream {proxy_config.registries[proxy_config.default_registry].url}"
            + (f", files on http://{proxy_config.files_host}:{proxy_config.files_port}" if files_sock else ""),
            flush=True,
        )
        await _run_until_signal(servers, tasks)
    finally:
        if agent is not None:
            await agent.close()
        await peer.close()
    return 0


def _agent_config(proxy: ProxyConfig, peer: PeerConfig) -> AgentConfig:
    """The registries and file origins of the proxy's settings: a job fetches from where a client of this host may;
    and where the host lets file jobs write."""
    return AgentConfig(
        registries=proxy.registries, default_registry=proxy.default_registry, file_origins=proxy.file_origins,
        file_dirs=tuple(d.strip() for d in peer.file_job_dirs.split(",") if d.strip()),
        runtime_pull=tuple(shlex.split(peer.runtime_pull)),
        mirror_host=_mirror_host(proxy),
    )


def _mirror_host(proxy: ProxyConfig) -> str:
    """The mirror as a runtime on this host reaches it: a mirror on every address is reached on loopback."""
    host = proxy.listen_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"[{host}]:{proxy.listen_port}" if ":" in host else f"{host}:{proxy.listen_port}"
