"""The file storm's figures as Markdown (docs/benchmarks.md, section `bench-files-N`)."""

from __future__ import annotations

import statistics

from .file_storm import MODES, FileStorm, FileStormReport
from .machine import Machine
from .report import GOODPUT, stamp

LABELS = {"direct": "direct from nginx (curl)", "damselfly": "Damselfly (`damselfly get`)"}


def _spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    """Median, and the range over the rounds."""
    if not values:
        return "n/a"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}{unit}"
    return f"{median:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def file_storm_markdown(report: FileStormReport, command: str, host: Machine) -> str:
    link = report.link_seconds
    rounds = max((s.round for s in report.storms), default=0)
    lines = [
        f"### File storm: {report.hosts} hosts, origin {report.upstream_mbit} Mbit/s, hosts {report.host_mbit} "
        "Mbit/s",
        "",
        stamp(command, host),
        f"Every host fetches one random file of {report.file_bytes / 1e6:.0f} MB at the same moment from Debian's "
        "nginx behind the shaped origin link, direct (curl) and through Damselfly (a cold supernode and peers "
        "started for each round; `damselfly get URL -o PATH --digest …` on every host), alternating, "
        f"{rounds} rounds. The origin link needs {link:.2f} s to send the file once ({link / GOODPUT:.2f} s at "
        "tbf's TCP goodput). Origin bytes are nginx's `$body_bytes_sent` of the file's GETs; every host's file "
        "is hashed afterwards. Figures: median over the rounds (min-max).",
        "",
        "| mode | origin bytes / file | all hosts done | / link time | per-host p50 | files right | CPU busy "
        "| daemons' CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        storms = report.of(mode)
        if not storms:
            continue
        lines.append(_row(mode, storms, report.file_bytes, link))
    direct, ours = report.of("direct"), report.of("damselfly")
    if direct and ours:
        ratio = statistics.median(s.all_done for s in ours) / statistics.median(s.all_done for s in direct)
        saved = 1 - statistics.median(s.origin_bytes for s in ours) / statistics.median(
            s.origin_bytes for s in direct
        )
        lines += [
            "",
            f"Damselfly against direct in the same run: all hosts done in {ratio:.2f}x the time, "
            f"{saved * 100:.0f}% less sent by the origin.",
        ]
    failures = [f"round {s.round} {s.mode}: {f}" for s in report.storms for f in s.failures]
    if failures:
        lines += ["", "Failures:", *[f"- `{f[:300]}`" for f in failures[:20]]]
    return "\n".join(lines) + "\n"


def _row(mode: str, storms: list[FileStorm], file_bytes: int, link: float) -> str:
    done = [s.all_done for s in storms]
    p50 = [statistics.median(s.host_seconds) for s in storms if s.host_seconds]
    return (
        f"| {LABELS[mode]} | {_spread([s.origin_bytes / file_bytes for s in storms])} | "
        f"{_spread(done, ' s', 1)} | {_spread([d / link for d in done])} | {_spread(p50, ' s', 1)} | "
        f"{'yes' if all(s.files_ok for s in storms) else '**NO**'} | "
        f"{_spread([s.cpu_busy * 100 for s in storms], '%', 0)} | "
        f"{_spread([s.daemon_cpu_seconds for s in storms], '', 1) if mode == 'damselfly' else '-'} |"
    )
