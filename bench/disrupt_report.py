"""Disruption runs as Markdown: one part per kind inside the `disruptions` block of docs/reliability.md."""

from __future__ import annotations

from .disrupt import what_was_done
from .machine import Machine
from .report import stamp
from .results import DisruptionReport, ScenarioResult

DEFAULT_OUTPUT = "docs/reliability.md"
SECTION = "disruptions"
# Issue [8]'s bounds, which tests/cluster/test_disruptions.py asserts too.
MAX_TIME_RATIO = 1.3
MAX_UPSTREAM_RATIO = 1.10


def part_id(kind: str) -> str:
    return f"disruption-{kind}"


def disruption_markdown(report: DisruptionReport, command: str, host: Machine) -> str:
    layers = ", ".join(f"{b / 1e6:.1f}" for b in report.layer_bytes)
    ratios = report.time_ratios
    upstream = [r.disrupted.upstream_ratio for r in report.runs]
    # What the bound is held to: the upstream's bytes to the hosts not killed (all hosts for a supernode fault).
    bounded = [r.disrupted.survivors_upstream_ratio for r in report.runs]
    lines = [
        f"#### {report.kind}: {report.description}, {report.disrupt_at:g} s into the storm",
        "",
        stamp(command, host),
        f"{report.hosts} hosts pull {report.image_bytes / 1e6:.1f} MB (3 layers of {layers} MB) through their own "
        f"Damselfly mirror; upstream {report.upstream_mbit} Mbit/s, hosts {report.host_mbit} Mbit/s. Each run is "
        "an undisturbed storm and a disrupted one in the same network. All done: the last pull of a host that was "
        "not killed; upstream: blob bytes the upstream registry sent / image bytes; to the others: the same, less what "
        "it sent the killed host (which took what it had fetched and not passed on with it).",
        "",
        "| run | all done, undisturbed | all done, disrupted | disrupted / undisturbed | upstream, undisturbed "
        "| upstream, disrupted | to the others, disrupted | failed pulls (undisturbed / disrupted) "
        "| digest problems (same) | what was done |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, run in enumerate(report.runs, 1):
        calm, hit = run.undisturbed, run.disrupted
        lines.append(
            f"| {index} | {calm.all_done:.1f} s | {hit.all_done:.1f} s | {run.time_ratio:.2f} | "
            f"{calm.upstream_ratio:.2f}x | {hit.upstream_ratio:.2f}x | {hit.survivors_upstream_ratio:.2f}x | "
            f"{_count(calm, hit, 'failed_pulls')} | "
            f"{_count(calm, hit, 'digest_problems')} | {what_was_done(hit.event) if hit.event else '?'} |"
        )
    if report.runs:
        time_met = max(ratios) <= MAX_TIME_RATIO
        upstream_met = max(bounded) <= MAX_UPSTREAM_RATIO
        lines += [
            "",
            f"Disrupted / undisturbed: median {report.median_time_ratio:.2f} (spread {min(ratios):.2f}-"
            f"{max(ratios):.2f}); upstream when disrupted {min(upstream):.3f}-{max(upstream):.3f}x the image, to the "
            f"hosts not killed {min(bounded):.3f}-{max(bounded):.3f}x. Issue [8]'s bounds: every run ≤ "
            f"{MAX_TIME_RATIO}x the undisturbed storm ({'met' if time_met else '**not met**'}), upstream to the hosts "
            f"not killed ≤ {MAX_UPSTREAM_RATIO:.2f}x the image ({'met' if upstream_met else '**not met**'}).",
        ]
    problems = report.problems
    if problems:
        lines += ["", "Problems:", *[f"- `{p[:300]}`" for p in problems[:20]]]
    return "\n".join(lines) + "\n"


def _count(calm: ScenarioResult, hit: ScenarioResult, name: str) -> str:
    return f"{getattr(calm, name)} / {getattr(hit, name)}"
