"""The supernode load benchmark's figures as Markdown."""

from __future__ import annotations

from collections.abc import Callable

from .machine import Machine
from .report import stamp
from .sn_bench import PHASE_OF, SupernodeReport, cpu_ms, rate
from .sn_load import PhaseFigures

PHASES = {
    "register": "register: `POST /peers`",
    "join": "join: `POST /swarms/<d>/join`",
    "heartbeat": "heartbeat: `POST /peers/<id>/heartbeat`",
    "report": "report: a child's pieces, `POST /swarms/<d>/report`",
    "view": "view answered at once: `GET /swarms/<d>/view?since=-1`",
    "wake": "long-poll woken by a digest: `GET …/view?since=&wait=5&from=`",
    "play": "play: the protocol at the peers' pace (every kind)",
}


def supernode_markdown(report: SupernodeReport, command: str, host: Machine) -> str:
    s = report.settings.load
    n = len(report.samples)
    members = s.hosts * s.layers // s.swarms
    lines = [
        "### The supernode's HTTP layer: one process on loopback under the peers' protocol",
        "",
        stamp(command, host),
        f"One `damselfly supernode` process (uvicorn, httptools, asyncio loop) on 127.0.0.1 and one load generator "
        f"process (`bench/sn_load.py`: keep-alive HTTP/1.1 connections, the requests of "
        f"`supernode/client.py` with the peers' timings). {s.hosts:,} hosts register and join {s.layers} of "
        f"{s.swarms} swarms ({members:,} members each, blobs of {s.pieces} pieces); closed loops of "
        f"{s.concurrency} connections send one kind of request back to back for {s.seconds:g} s; in the wake phase "
        f"every source reports {s.wake_digests} digests one at a time, each once all its children have the last. "
        f"Medians of {n} samples (min to max in brackets), each against a fresh supernode. CPU is the supernode "
        "process's user + system time (/proc); *ceiling* is what one fully busy core would answer at that cost.",
        "",
        "| phase: requests | answered | per second | supernode CPU busy | supernode CPU-s per 1,000 | ceiling / s "
        "| round trip p50 / p99 (ms) | generator CPU busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, title in PHASES.items():
        if not all(any(p.name == name for p in sample.phases) for sample in report.samples):
            continue
        cost = report.median(name, cpu_ms)
        lines.append(
            f"| {title} | {report.median(name, lambda p: p.answered):,.0f} | {_spread(report, name, rate)} | "
            f"{report.median(name, _busy):.0%} | {cost:.3f} [{_range(report, name, cpu_ms, '.3f')}] | "
            f"{1e3 / cost if cost else 0:,.0f} | {_round_trip(report, name)} | "
            f"{report.median(name, lambda p: p.generator_cpu / p.wall_seconds):.0%} |"
        )
    wake = report.samples[0].phase("wake")
    lines += [
        "",
        f"- **Wake-up latency**, from a source's digest report to each child's view carrying it: in the wake phase "
        f"({wake.expected // max(s.wake_digests, 1):,} children woken at once per digest) p50 "
        f"{report.median('wake', _wake_p50):.0f} ms, p99 {report.median('wake', _wake_p99):.0f} ms; in play "
        f"({s.play_hosts} hosts in {s.play_swarms} swarms of {s.play_pieces} pieces, a piece every "
        f"{s.piece_interval:g} s) p50 {report.median('play', _wake_p50):.1f} ms, p99 "
        f"{report.median('play', _wake_p99):.1f} ms, with the supernode {report.median('play', _busy):.0%} busy "
        f"answering {_spread(report, 'play', rate)} requests/s ({_play_mix(report)}).",
        f"- Digests delivered to children: {_delivered(report)}; requests not answered as the API promises: "
        f"{report.errors}.",
        f"- The machine: load average before the samples {', '.join(f'{s.load_before:.2f}' for s in report.samples)}; "
        f"all CPUs busy during them {', '.join(f'{s.cpu_busy:.0%}' for s in report.samples)}.",
    ]
    lines += _cluster(report)
    return "\n".join(lines) + "\n"


def _cluster(report: SupernodeReport) -> list[str]:
    c = report.settings.cluster
    lines = [
        "",
        f"What {c.hosts:,} hosts ask of one supernode process: the requests per second of `damselfly simulate`'s "
        f"model ({c.hosts:,} hosts, {c.swarms} swarms, {c.layers} blobs per image pulled at once, hosts starting over "
        f"{c.window:g} s), each priced at the supernode CPU its kind cost above (views as woken long-polls).",
        "",
        "| request | per second needed | supernode CPU ms each | CPU-s per second |",
        "|---|---|---|---|",
    ]
    for kind, needed in sorted(report.cluster_rates.items(), key=lambda kv: -kv[1]):
        cost = report.cpu_ms_per_request(kind)
        lines.append(f"| {kind} ({PHASE_OF[kind]} phase) | {needed:,.0f} | {cost:.3f} | {needed * cost / 1e3:.2f} |")
    need, calls = report.cluster_cpu, report.cluster_calls
    answered = calls / need if need else 0.0
    verdict = (
        f"one process answers {answered:,.0f} of them per second: **{need:.2f}x what one core can give**"
        if need > 1.0
        else f"one process keeps up, {need:.0%} busy"
    )
    lines += [
        f"| **all** | **{calls:,.0f}** | {need / calls * 1e3 if calls else 0:.3f} (mean) | **{need:.2f}** |",
        "",
        f"At this mix, {verdict}.",
    ]
    return lines


def _busy(p: PhaseFigures) -> float:
    return p.supernode_cpu / p.wall_seconds if p.wall_seconds else 0.0


def _wake_p50(p: PhaseFigures) -> float:
    return p.wake.p50_ms if p.wake else 0.0


def _wake_p99(p: PhaseFigures) -> float:
    return p.wake.p99_ms if p.wake else 0.0


def _spread(report: SupernodeReport, name: str, figure: Callable[[PhaseFigures], float]) -> str:
    return f"{report.median(name, figure):,.0f} [{_range(report, name, figure, ',.0f')}]"


def _range(report: SupernodeReport, name: str, figure: Callable[[PhaseFigures], float], fmt: str) -> str:
    low, high = report.spread(name, figure)
    return f"{low:{fmt}} to {high:{fmt}}"


def _round_trip(report: SupernodeReport, name: str) -> str:
    sample = report.samples[0].phase(name)
    main = max(sample.requests, key=lambda kind: sample.requests[kind].count)

    def p50(p: PhaseFigures) -> float:
        return p.requests[main].p50_ms if main in p.requests else 0.0

    def p99(p: PhaseFigures) -> float:
        return p.requests[main].p99_ms if main in p.requests else 0.0

    return f"{report.median(name, p50):.1f} / {report.median(name, p99):.1f}"


def _play_mix(report: SupernodeReport) -> str:
    phase = report.samples[0].phase("play")
    kinds = sorted(phase.requests.items(), key=lambda kv: -kv[1].count)
    return ", ".join(f"{kind} {r.count / phase.wall_seconds:,.0f}/s" for kind, r in kinds) + " in the first sample"


def _delivered(report: SupernodeReport) -> str:
    delivered = sum(p.delivered for s in report.samples for p in s.phases)
    expected = sum(p.expected for s in report.samples for p in s.phases)
    return f"{delivered:,} of {expected:,}" + (" (all)" if delivered == expected else " (**some missing**)")
