"""`damselfly bench` and `damselfly simulate`: the order in which the parts run (their flags: `bench/cli.py`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from .cluster import SCENARIOS, ClusterBench, ClusterSettings
from .disrupt import KINDS, DisruptionBench, DisruptionSettings
from .disrupt_report import SECTION, disruption_markdown, part_id
from .file_report import file_storm_markdown
from .file_storm import FileStormBench, FileStormSettings
from .loopback import LoopbackBench, LoopbackSettings
from .machine import machine
from .mirror_entry import cleanup_abandoned as abandoned_mirror_entries
from .netns import cleanup_abandoned
from .procs import CommandFailed
from .report import cluster_markdown, loopback_markdown, update_section
from .sim_report import simulate_markdown
from .simulate import SimSettings, simulate
from .sn_bench import QUICK, SupernodeBench, SupernodeBenchSettings
from .sn_report import supernode_markdown


def run(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C, so namespaces and daemons are torn down by the same finally blocks; SIGINT is
    # set too because a shell starts background jobs with it ignored, and Python then never raises on it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return bench(args) if args.command == "bench" else simulate_command(args)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped and removed", file=sys.stderr)
        return 130
    except (CommandFailed, subprocess.TimeoutExpired) as exc:
        # A daemon that would not start, a tool that failed: one clear line (the logs are in the work dir).
        print(f"damselfly {args.command}: {exc}", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def command_line(args: argparse.Namespace) -> str:
    if len(sys.argv) > 1 and sys.argv[1] == args.command:
        return "damselfly " + " ".join(sys.argv[1:])
    return f"damselfly {args.command}"


def bench(args: argparse.Namespace) -> int:
    if args.cleanup:
        removed = cleanup_abandoned()
        log(f"removed {len(removed)} abandoned namespaces" + (f": {', '.join(removed)}" if removed else ""))
        dropins = abandoned_mirror_entries()
        log(f"removed {len(dropins)} abandoned registries.conf drop-ins"
            + (f": {', '.join(dropins)}" if dropins else ""))
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.disrupt:
        return disrupt(args, scenarios)
    unknown = set(scenarios) - {*SCENARIOS, "loopback", "supernode", "files"}
    if unknown:
        print(f"damselfly bench: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    cluster_keys = tuple(s for s in scenarios if s in SCENARIOS)
    if (cluster_keys or "files" in scenarios) and os.geteuid() != 0:
        print("damselfly bench: scenarios a, b, c and files need root (network namespaces, tc)", file=sys.stderr)
        return 2
    if args.repeat is not None and args.repeat < 1:
        print("damselfly bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    hosts, image_mb, blob_mib = args.hosts, args.image_mb, args.blob_mib
    repeat = 5 if args.repeat is None else args.repeat
    # One storm per scenario unless more are asked for: a storm is long, a loopback sample short.
    rounds = 1 if args.repeat is None else args.repeat
    if args.quick:
        hosts, image_mb, blob_mib, repeat = 3, 6.0, 64, 1
    workdir = Path(args.workdir)
    output = Path(args.output)
    host = machine()
    results: dict[str, Any] = {"machine": asdict(host)}
    if cluster_keys:
        settings = ClusterSettings(
            hosts=hosts,
            upstream_mbit=args.upstream_mbit,
            host_mbit=args.host_mbit,
            image_bytes=int(image_mb * 1e6),
            scenarios=cluster_keys,
            log_level=args.daemon_log_level,
            client=args.client,
            mirror_mode=args.mirror_mode,
            rounds=rounds,
        )
        report = ClusterBench(settings, workdir, log).run()
        results["cluster"] = _dump(report)
        update_section(output, cluster_section(settings), cluster_markdown(report, command_line(args), host))
    if "loopback" in scenarios:
        loop_settings = LoopbackSettings(
            blob_bytes=blob_mib << 20, image_bytes=int(image_mb * 1e6), clients=args.clients, repeat=repeat
        )
        loop_report = LoopbackBench(loop_settings, workdir, log).run()
        results["loopback"] = _dump(loop_report)
        update_section(output, "bench-loopback", loopback_markdown(loop_report, command_line(args), host))
    if "files" in scenarios:
        file_hosts, file_mb, file_repeat = (3, 20.0, 1) if args.quick else (hosts, args.file_mb, repeat)
        file_settings = FileStormSettings(
            hosts=file_hosts, upstream_mbit=args.upstream_mbit, host_mbit=args.host_mbit,
            file_bytes=int(file_mb * 1e6), repeat=file_repeat, log_level=args.daemon_log_level,
        )
        file_report = FileStormBench(file_settings, workdir, log).run()
        results["files"] = _dump(file_report)
        update_section(output, f"bench-files-{file_hosts}", file_storm_markdown(file_report, command_line(args), host))
    if "supernode" in scenarios:
        sn_settings = QUICK if args.quick else SupernodeBenchSettings(repeat=repeat)
        sn_report = SupernodeBench(sn_settings, workdir, log).run()
        results["supernode"] = _dump(sn_report)
        update_section(output, "bench-supernode", supernode_markdown(sn_report, command_line(args), host))
    _write_json(args.json, results)
    log(f"results written to {output}")
    return 0 if _all_digests_ok(results) else 1


def cluster_section(settings: ClusterSettings) -> str:
    """Each client and mode owns a section, so a podman run never replaces the skopeo figures."""
    section = f"bench-cluster-{settings.hosts}"
    if settings.client != "skopeo":
        section += f"-{settings.client}"
    if settings.mirror_mode != "entry":
        section += f"-{settings.mirror_mode}"
    return section


def disrupt(args: argparse.Namespace, scenarios: list[str]) -> int:
    """`--disrupt`: faults injected into scenario (c)'s storm, each run against an undisturbed storm."""
    kinds = tuple(k.strip() for k in args.disrupt.split(",") if k.strip())
    unknown = set(kinds) - set(KINDS)
    if unknown:
        print(f"damselfly bench: unknown --disrupt {sorted(unknown)} (known: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    if scenarios != ["c"]:
        print("damselfly bench: --disrupt applies to scenario c alone: add --scenarios c", file=sys.stderr)
        return 2
    if args.runs < 1 or args.disrupt_at < 0:
        print("damselfly bench: --runs must be at least 1 and --disrupt-at not negative", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("damselfly bench: scenario c needs root (network namespaces, tc)", file=sys.stderr)
        return 2
    hosts, image_mb = (3, 6.0) if args.quick else (args.hosts, args.image_mb)
    settings = ClusterSettings(
        hosts=hosts, upstream_mbit=args.upstream_mbit, host_mbit=args.host_mbit, image_bytes=int(image_mb * 1e6),
        scenarios=("c",), log_level=args.daemon_log_level, client=args.client, mirror_mode=args.mirror_mode,
    )
    faults = DisruptionSettings(kinds=kinds, at=args.disrupt_at, runs=args.runs)
    reports = DisruptionBench(settings, faults, Path(args.workdir), log).run()
    host = machine()
    output = Path(args.disrupt_output)
    for report in reports:
        update_section(output, part_id(report.kind), disruption_markdown(report, command_line(args), host),
                       inside=SECTION)
    _write_json(args.json, {"machine": asdict(host), "disruptions": [_dump(r) for r in reports]})
    log(f"results written to {output}")
    return 0 if all(not r.problems for r in reports) else 1


def simulate_command(args: argparse.Namespace) -> int:
    settings = SimSettings(
        hosts=args.hosts,
        swarms=args.swarms,
        layers=args.layers,
        blob_mb=args.blob_mb,
        window=args.window,
        churn=args.churn,
        sequential=args.sequential,
        report_interval=args.report_interval,
        seed=args.seed,
    )
    report = simulate(settings, profile=args.profile, log=log)
    # Variants get sections of their own, so the default figures are never replaced by a profiled run's.
    section = "simulate" + ("-sequential" if args.sequential else "") + ("-profile" if args.profile else "")
    if settings.report_interval != SimSettings().report_interval:
        section += f"-report-{settings.report_interval:g}s"
    update_section(Path(args.output), section, simulate_markdown(report, command_line(args), machine()))
    _write_json(args.json, {"simulate": _dump(report)})
    log(f"results written to {args.output}")
    return 0


def _dump(obj: Any) -> Any:
    """A dataclass as JSON data, its derived figures (properties) included."""
    data = asdict(obj)
    for name in dir(type(obj)):
        if isinstance(getattr(type(obj), name), property):
            data[name] = getattr(obj, name)
    for key, value in data.items():
        if isinstance(value, list) and value and hasattr(getattr(obj, key)[0], "__dataclass_fields__"):
            data[key] = [_dump(item) for item in getattr(obj, key)]
        elif isinstance(value, dict) and hasattr(getattr(obj, key), "__dataclass_fields__"):
            data[key] = _dump(getattr(obj, key))
    return data


def _write_json(path: str, results: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2) + "\n")


def _all_digests_ok(results: dict[str, Any]) -> bool:
    # The loopback part raises on a wrong blob; the cluster part reports per scenario, so the exit code says it, as
    # it does for a supernode that did not answer a request as the API promises or left a child without a digest.
    supernode = results.get("supernode", {"errors": 0, "undelivered": 0})
    cluster_ok = all(s["digests_ok"] for s in results.get("cluster", {}).get("scenarios", []))
    files_ok = all(s["files_ok"] for s in results.get("files", {}).get("storms", []))
    return cluster_ok and files_ok and supernode["errors"] == 0 and supernode["undelivered"] == 0
