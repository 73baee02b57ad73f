"""The console's analysis page: the hosts' traffic over time (GET /api/v1/analysis/traffic, through the session) as
a chart drawn here as inline SVG (no script, nothing fetched), its table, and the API's CSV as a download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..permissions import Permission
from . import pages
from .web import Console, Notes, Viewer, size

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 50, 12, 34
SINCE_CHOICES = ("6h", "24h", "7d", "30d")
X_LABELS = 8


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str
    bytes: int
    start: str


@dataclass(frozen=True, slots=True)
class TimeBar:
    x: float
    y: float
    width: float
    height: float
    # p50, p95 or max of the task's hosts' times.
    kind: str
    seconds: float
    task: int


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws: bars per bucket (upstream, peers) or per task (its hosts' p50, p95, max), a ratio
    as a line (the saved ratio, the success rate) on the right axis, the axes' labels."""

    bars: list[Bar] | list[TimeBar]
    ratio_points: str
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def chart(series: list[dict[str, Any]], step: str) -> Chart:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max([max(b["fetched_upstream"], b["fetched_peers"]) for b in series] + [1])
    slot = plot_w / max(len(series), 1)
    bar_w = max(slot * 0.4, 1.0)
    bars: list[Bar] = []
    points: list[str] = []
    for n, bucket in enumerate(series):
        x = LEFT + n * slot + slot * 0.1
        for offset, kind in ((0.0, "upstream"), (bar_w, "peers")):
            amount = int(bucket[f"fetched_{kind}"])
            height = plot_h * amount / peak
            bars.append(Bar(round(x + offset, 2), round(TOP + plot_h - height, 2), round(bar_w, 2), round(height, 2),
                            kind, amount, bucket["start"]))
        if bucket.get("saved_ratio") is not None:
            points.append(f"{LEFT + (n + 0.5) * slot:.2f},{TOP + plot_h * (1 - float(bucket['saved_ratio'])):.2f}")
    y_labels = [(TOP + plot_h * (1 - share), size(int(peak * share))) for share in (0.0, 0.5, 1.0)]
    every = max(1, -(-len(series) // X_LABELS))
    cut = slice(11, 16) if step == "hour" else slice(5, 10)
    x_labels = [(LEFT + (n + 0.5) * slot, bucket["start"][cut]) for n, bucket in enumerate(series) if n % every == 0]
    return Chart(bars, " ".join(points), y_labels, x_labels)


def task_chart(figures: list[dict[str, Any]]) -> Chart:
    tasks = sorted(figures, key=lambda f: int(f["id"]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max([float(f["host_max"] or 0) for f in tasks] + [0.001])
    slot = plot_w / max(len(tasks), 1)
    bar_w = max(slot * 0.8 / 3, 1.0)
    bars: list[TimeBar] = []
    points: list[str] = []
    for n, figure in enumerate(tasks):
        x = LEFT + n * slot + slot * 0.1
        for i, kind in enumerate(("p50", "p95", "max")):
            seconds = figure[f"host_{kind}"]
            if seconds is None:
                continue
            height = plot_h * float(seconds) / peak
            bars.append(TimeBar(round(x + i * bar_w, 2), round(TOP + plot_h - height, 2), round(bar_w, 2),
                                round(height, 2), kind, float(seconds), int(figure["id"])))
        if figure["success_rate"] is not None:
            points.append(f"{LEFT + (n + 0.5) * slot:.2f},{TOP + plot_h * (1 - float(figure['success_rate'])):.2f}")
    y_labels = [(TOP + plot_h * (1 - share), f"{peak * share:.1f} s") for share in (0.0, 0.5, 1.0)]
    every = max(1, -(-len(tasks) // X_LABELS))
    x_labels = [(LEFT + (n + 0.5) * slot, f"#{f['id']}") for n, f in enumerate(tasks) if n % every == 0]
    return Chart(bars, " ".join(points), y_labels, x_labels)


async def analysis(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    query = request.query_params
    if any(not value for _, value in query.multi_items()):
        kept = urlencode([(key, value) for key, value in query.multi_items() if value])
        return RedirectResponse(f"/console/analysis?{kept}" if kept else "/console/analysis", 303)
    answer = await console.call(request, "analysis_traffic")
    if answer.status in (401, 403):
        return pages.refused(console, request, viewer, answer)
    data: dict[str, Any] = {"series": [], "totals": {}, "step": query.get("step", "hour")}
    if answer.ok:
        data = answer.data
    else:
        notes.error, status = answer.message, answer.status
    tasks = None
    if viewer.may(Permission.TASKS_READ):
        # The same `since`: the tasks created in the period, their summary (manager/task_analysis.py).
        figures = await console.call(request, "analysis_tasks")
        tasks = figures.data if figures.ok else None
    chosen = {"since": query.get("since", "24h"), "step": query.get("step", "hour")}
    csv_query = urlencode([*((k, v) for k, v in query.multi_items() if k != "format"), ("format", "csv")])
    return console.render(request, "analysis.html", status, **pages.frame(viewer), notes=notes, data=data,
                          chart=chart(data["series"], data["step"]), chosen=chosen, since_choices=SINCE_CHOICES,
                          csv_link=f"/console/analysis/traffic.csv?{csv_query}", tasks=tasks,
                          task_chart=task_chart(tasks["tasks"]) if tasks else None)


async def download(console: Console, request: Request) -> Response:
    """The API's CSV (format=csv), as a file to save."""
    response = await console.respond(request, "analysis_traffic")
    if response.media_type and response.media_type.startswith("text/csv"):
        response.headers["Content-Disposition"] = 'attachment; filename="damselfly-traffic.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
