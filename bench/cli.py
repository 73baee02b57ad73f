"""The flags of `damselfly bench` and `damselfly simulate`.

`damselfly --help` shows them, so the `damselfly` command imports this module at every start: it must stay light.
The benchmark itself (`bench/command.py` and everything it uses) is imported only when one of the two runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .sim_model import SimSettings

COMMANDS = ("bench", "simulate")
# Root-owned by default (the cluster benchmark runs as root): no shared /tmp paths.
DEFAULT_WORKDIR = str(Path.home() / ".cache" / "damselfly-bench")
DEFAULT_OUTPUT = "docs/benchmarks.md"
DEFAULT_DISRUPT_OUTPUT = "docs/reliability.md"


def add_commands(commands: Any) -> None:
    """Add `bench` and `simulate` to the `damselfly` command's subparsers."""
    bench = commands.add_parser("bench", help="pull-storm benchmark in network namespaces (root), and on loopback")
    bench.add_argument("--hosts", type=int, default=8, help="hosts pulling at once (default 8)")
    bench.add_argument("--upstream-mbit", type=int, default=100, help="upstream link, Mbit/s (default 100)")
    bench.add_argument("--host-mbit", type=int, default=1000, help="each host's link, Mbit/s (default 1000)")
    bench.add_argument("--image-mb", type=float, default=100.0, help="image size in MB, 3 layers (default 100)")
    bench.add_argument(
        "--scenarios",
        default="a,b,c,loopback",
        help="comma-separated: a (direct), b (central cache), c (Damselfly), loopback (default: these four), "
        "supernode (one supernode process under the peers' HTTP load; not in the default), files (N hosts fetch one "
        "large file from nginx, direct and through `damselfly get`; not in the default)",
    )
    # The names and their meaning live in bench/disrupt.py, which this light module must not import.
    bench.add_argument(
        "--disrupt",
        default="",
        help="with --scenarios c: comma-separated faults injected into the storm, each priced against an "
        "undisturbed storm in the same run: supernode-kill, supernode-restart, supernode-stop, feeder-kill "
        "(report: --disrupt-output)",
    )
    bench.add_argument("--disrupt-at", type=float, default=3.0, help="seconds into the storm of the fault (default 3)")
    bench.add_argument("--runs", type=int, default=3, help="runs of each --disrupt fault, each two storms (default 3)")
    bench.add_argument(
        "--disrupt-output", default=DEFAULT_DISRUPT_OUTPUT,
        help=f"Markdown report the --disrupt figures go into (default {DEFAULT_DISRUPT_OUTPUT})",
    )
    bench.add_argument("--file-mb", type=float, default=200.0, help="file size of --scenarios files, MB (default 200)")
    bench.add_argument("--blob-mib", type=int, default=1024, help="blob size of the loopback figures (default 1024)")
    bench.add_argument("--clients", type=int, default=4, help="concurrent clients of the loopback RSS figure")
    bench.add_argument(
        "--repeat", type=int, default=None,
        help="samples per loopback or supernode figure and rounds of the file storm (default 5); storms of each of "
        "scenarios a, b, c, run in turns (default 1)",
    )
    # The names live in bench/clients.py, which this light module must not import.
    bench.add_argument(
        "--client", default="skopeo", choices=["skopeo", "podman", "containerd"],
        help="what every host pulls with in scenarios a, b, c: skopeo copy to dir:, podman pull (its own storage "
        "per host), ctr images pull (a containerd per host) (default skopeo)",
    )
    bench.add_argument(
        "--mirror-mode", default="entry", choices=["entry", "registry"],
        help="how scenario c's clients reach their Damselfly: a mirror entry for a made-up registry name "
        "(registries.conf, hosts.toml; a fallback around the mirror fails) or the mirror's address as a registry "
        "(default entry)",
    )
    bench.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"cache and run logs (default {DEFAULT_WORKDIR})")
    bench.add_argument("--output", default=DEFAULT_OUTPUT, help=f"Markdown report to update (default {DEFAULT_OUTPUT})")
    bench.add_argument("--json", default="", help="also write the raw results to this JSON file")
    bench.add_argument(
        "--daemon-log-level", default="info", choices=["debug", "info", "warning"],
        help="log level of the Damselfly daemons under test (debug: a timestamped line per request)",
    )
    bench.add_argument("--quick", action="store_true", help="small image and blob, 3 hosts, one sample (smoke test)")
    bench.add_argument("--cleanup", action="store_true", help="only delete namespaces left by killed runs, then exit")

    sim = commands.add_parser("simulate", help="drive the supernode's scheduler with simulated peers (no sockets)")
    defaults = SimSettings()
    sim.add_argument("--hosts", type=int, default=defaults.hosts, help=f"simulated hosts (default {defaults.hosts})")
    sim.add_argument("--swarms", type=int, default=defaults.swarms, help=f"blobs (default {defaults.swarms})")
    sim.add_argument("--layers", type=int, default=defaults.layers, help="blobs per image: each host pulls one image")
    sim.add_argument("--blob-mb", type=float, default=defaults.blob_mb, help="mean blob size, MB")
    sim.add_argument("--window", type=float, default=defaults.window, help="seconds over which hosts start pulling")
    sim.add_argument("--churn", type=float, default=defaults.churn, help="share of hosts that die mid-pull")
    sim.add_argument("--sequential", action="store_true", help="pull an image's blobs one by one (like skopeo)")
    sim.add_argument(
        "--report-interval", type=float, default=defaults.report_interval,
        help=f"least seconds between a child's piece-count reports (default {defaults.report_interval:g}, the peers')",
    )
    sim.add_argument("--seed", type=int, default=defaults.seed)
    sim.add_argument("--profile", action="store_true", help="run under cProfile and report the hottest functions")
    sim.add_argument("--output", default=DEFAULT_OUTPUT, help=f"Markdown report to update (default {DEFAULT_OUTPUT})")
    sim.add_argument("--json", default="", help="also write the raw results to this JSON file")
