"""The simulation's figures as Markdown."""

from __future__ import annotations

from .machine import Machine
from .report import stamp
from .sim_model import SimSettings
from .simulate import SimReport


def simulate_markdown(report: SimReport, command: str, host: Machine) -> str:
    s = report.settings
    m = report.memory
    members = report.downloads
    order = "one blob after another (like skopeo)" if s.sequential else "all at once (like containerd)"
    reports = (
        "" if s.report_interval == SimSettings().report_interval
        else f", children reporting their pieces at most every {s.report_interval:g} s"
    )
    lines = [
        f"### Scheduler at scale: {s.hosts:,} simulated hosts, {s.swarms} swarms, "
        + ("blobs one at a time" if s.sequential else "layers pulled at once")
        + reports
        + (", under cProfile (call times inflated by the profiler)" if report.profile else ""),
        "",
        stamp(command, host),
        f"Each host pulls one image of {s.layers} blobs (mean {s.blob_mb:g} MB, 4 MiB pieces) "
        f"{order}, hosts starting "
        f"over {s.window:g} s; {s.churn:.0%} of hosts die mid-pull; {members:,} swarm memberships in all. Host links "
        f"{s.host_mbit} Mbit/s, the upstream's {s.upstream_mbit} Mbit/s shared by all sources. Only time inside "
        "`Scheduler` calls counts (no HTTP, no JSON): the supernode's HTTP layer comes on top.",
        "",
        f"- Simulated {report.simulated_seconds:.0f} s in {report.wall_seconds:.0f} s of wall time; hosts done "
        f"{report.hosts_done:,}, dead {report.hosts_dead}, fallbacks to the upstream after a 20 s stall "
        f"{report.fallbacks:,}, calls refused (unknown peer or task) {report.errors:,}.",
        f"- Upstream pieces / unique pieces: {report.upstream_ratio:.2f} (1.00 is each blob fetched once). Views "
        f"that left a child with fewer parents than it asks for: {report.short_view_share:.0%}.",
        f"- **Scheduling decisions** (join and view answers) per second of scheduler time: "
        f"**{report.decisions_per_second:,.0f}**; the scheduler's own parent-change counter reached "
        f"{report.decisions_counter:,}.",
        f"- **Scheduler busy {report.busy_share:.2f} s per simulated second** (above 1.0 one supernode process "
        f"cannot keep up); calls per simulated second: {report.requests_per_simulated_second:,.0f}.",
        f"- **Memory** (tracemalloc): {m.per_peer:,.0f} B per registered peer, {m.per_swarm:,.0f} B per swarm "
        f"(with one member), {m.per_member:,.0f} B per further member, {m.per_swarm_progress:,.0f} B per swarm for "
        f"published piece digests and members' piece sets; {m.total / 1e6:.1f} MB for the whole state, peak "
        f"{m.peak / 1e6:.1f} MB.",
        "",
        "| call | count | per simulated s | mean µs | p50 µs | p99 µs | max µs | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, c in sorted(report.calls.items(), key=lambda kv: -kv[1].seconds):
        lines.append(
            f"| {kind} | {c.count:,} | {c.count / report.simulated_seconds:,.0f} | {c.mean_us:.1f} | {c.p50_us:.1f} "
            f"| {c.p99_us:.1f} | {c.max_us:.0f} | {c.seconds:.2f} |"
        )
    if report.profile:
        lines += [
            "",
            "Hottest functions under cProfile (whole simulation, by own time):",
            "",
            "| function | calls | own s | cumulative s |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{name}` | {calls:,} | {own:.2f} | {cum:.2f} |" for name, calls, own, cum in report.profile]
    return "\n".join(lines) + "\n"
