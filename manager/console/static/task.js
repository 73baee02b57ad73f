// A task's page, live: the grid of hosts × blobs, the totals and the log follow the task's event stream
// (/console/tasks/ID/stream, server-sent events). Without this script the page shows the task as it was loaded.
"use strict";
(() => {
  const task = document.getElementById("task");
  if (!task || task.dataset.final === "true" || !window.EventSource) return;
  const FINAL = ["succeeded", "failed", "stopped"];
  const size = (n) => {
    let amount = n;
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (amount < 1024) return unit === "B" ? `${amount} B` : `${amount.toFixed(1)} ${unit}`;
      amount /= 1024;
    }
    return `${amount.toFixed(1)} TiB`;
  };
  const percent = (done, total, state) => (total > 0 ? Math.min(100, Math.floor(done * 100 / total)) : (state === "succeeded" ? 100 : 0));
  const cell = (tag, text, className) => {
    const element = document.createElement(tag);
    element.textContent = text;
    if (className) element.className = className;
    return element;
  };
  const stateBadge = (state) => { const td = cell("td", "", "state"); td.append(cell("span", state, `state ${state}`)); return td; };
  const drawGrid = (data) => {
    const digests = (data.blobs || []).map((b) => b.digest);
    const head = document.querySelector("#grid thead tr");
    while (head.children.length > 6) head.lastChild.remove();
    for (const digest of digests) {
      const th = cell("th", "", "");
      th.scope = "col"; th.title = digest; th.append(cell("code", digest.slice(7, 19)));
      head.append(th);
    }
    const body = document.querySelector("#grid tbody");
    const rows = (data.hosts || []).map((host) => {
      const tr = document.createElement("tr");
      tr.dataset.host = host.host; tr.dataset.state = host.state;
      const name = cell("th", host.host, "host"); name.scope = "row";
      tr.append(name, stateBadge(host.state), cell("td", `${percent(host.bytes_done, host.bytes_total, host.state)}%`, "total"),
        cell("td", size(host.from_peers), "peers"), cell("td", size(host.from_upstream), "upstream"), cell("td", host.error, "problem"));
      const blobs = new Map((host.blobs || []).map((b) => [b.digest, b]));
      for (const digest of digests) {
        const blob = blobs.get(digest) || { state: "", bytes_done: 0, size: 0, from_peers: 0, from_upstream: 0, error: "" };
        const td = cell("td", `${percent(blob.bytes_done || 0, blob.size || 0, blob.state)}%`, `blob ${blob.state || ""}`);
        td.dataset.digest = digest; td.dataset.state = blob.state || "";
        td.title = `${blob.state}: from peers ${size(blob.from_peers || 0)}, from upstream ${size(blob.from_upstream || 0)}${blob.error ? ": " + blob.error : ""}`;
        tr.append(td);
      }
      return tr;
    });
    body.replaceChildren(...rows);
  };
  const drawTask = (data) => {
    const state = document.getElementById("task-state");
    state.textContent = data.state; state.className = `state ${data.state}`;
    const t = data.totals;
    document.getElementById("totals").textContent = `${t.succeeded} of ${t.hosts} hosts done · ${size(t.bytes_done)} of ${size(t.bytes_total)} · from peers ${size(t.from_peers)} · from the upstream ${size(t.from_upstream)}`;
    document.getElementById("when").textContent = `Created ${data.created} by ${data.created_by}` +
      (data.started ? ` · started ${data.started}` : "") + (data.finished ? ` · finished ${data.finished}` : "");
    const error = document.getElementById("task-error");
    error.textContent = data.error; error.hidden = !data.error;
    const final = FINAL.includes(data.state);
    const toggle = (id, shown) => { const form = document.getElementById(id); if (form) form.hidden = !shown; };
    toggle("stop-form", !final); toggle("delete-form", final); toggle("retry-form", data.state === "failed" || data.state === "stopped");
  };
  const drawLog = (events) => {
    document.querySelector("#events tbody").replaceChildren(...events.map((e) => {
      const tr = document.createElement("tr");
      tr.append(cell("td", e.at), cell("td", e.actor), cell("td", e.what), cell("td", e.detail));
      return tr;
    }));
  };
  const drawFigures = (f) => {
    if (!f) return;
    const put = (id, text) => { document.getElementById(id).textContent = text; };
    put("fig-duration", `${f.duration} s`);
    put("fig-hosts", `p50 ${f.host_p50} s · p95 ${f.host_p95} s · max ${f.host_max} s`);
    put("fig-succeeded", `${f.succeeded} of ${f.hosts}` + (f.success_rate === null ? "" : ` (${Math.round(f.success_rate * 100)}%)`));
    put("task-saved", (f.saved_ratio === null ? "—" : `${(f.saved_ratio * 100).toFixed(1)}%`) +
      ` (from peers ${size(f.from_peers)}, from the upstream ${size(f.from_upstream)})`);
    document.getElementById("figures-section").hidden = false;
  };
  const live = document.getElementById("live");
  const source = new EventSource(task.dataset.stream);
  source.addEventListener("progress", (message) => {
    const data = JSON.parse(message.data);
    drawTask(data.task); drawGrid(data.task); drawLog(data.events);
    document.getElementById("log-earlier").hidden = !data.earlier;
    task.dataset.updates = String(Number(task.dataset.updates || 0) + 1);
    live.textContent = "live";
  });
  source.addEventListener("end", (message) => {
    source.close(); live.textContent = "";
    drawFigures(JSON.parse(message.data).figures);
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) live.textContent = "not live: reload the page"; };
})();
