// Synergy dashboard: draws the snapshots /api/events pushes (docs/dashboard.md).
//
// Every string in a snapshot comes from the space (device ids, app names, reasons) and is
// untrusted: the page is built with createElement / createElementNS and textContent only,
// never innerHTML, so no name can turn into markup. The Content-Security-Policy allows no
// inline script either. Rate and latency history lives here, in the page, for HISTORY_S.
"use strict";

(function () {
  const HISTORY_S = 300;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const history = new Map(); // app id -> [{t, rate, latency}]

  // -- building blocks -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits);
  }

  function rate(bytesPerS) {
    if (bytesPerS === null || bytesPerS === undefined) return "–";
    if (bytesPerS >= 1e6) return `${fmt(bytesPerS / 1e6, 1)} MB/s`;
    if (bytesPerS >= 1e3) return `${fmt(bytesPerS / 1e3, 1)} kB/s`;
    return `${fmt(bytesPerS, 0)} B/s`;
  }

  function clock(unix) {
    if (!unix) return "";
    return new Date(unix * 1000).toLocaleTimeString([], { hour12: false });
  }

  function ago(unix, now) {
    if (!unix) return "";
    const s = Math.max(0, Math.round(now - unix));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }

  // A stable colour per device, so one device looks the same in every pipeline and card.
  function hue(id) {
    let h = 0;
    for (const c of id) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function deviceColor(id, lightness) {
    return `hsl(${hue(id)}, 55%, ${lightness}%)`;
  }

  function badge(text, kind) {
    return el("span", { class: `badge badge-${kind}` }, text);
  }

  // -- header ----------------------------------------------------------------------------

  function renderSummary(snap) {
    const online = snap.devices.filter((d) => d.state === "online").length;
    const running = snap.apps.filter((a) => a.state === "running").length;
    const chip = (label, value, id) => el("div", { class: "chip", id }, el("span", { class: "chip-label" }, label), el("span", { class: "chip-value" }, value));
    const about = snap.coordinator || {};
    document.getElementById("summary").replaceChildren(
      chip("epoch", String(snap.epoch), "epoch"),
      chip("planner", snap.plan.method || about.planner || "–"),
      chip("predicted", `${fmt(snap.plan.system_throughput, 1)} frames/s`),
      chip("devices", `${online} / ${snap.devices.length} online`),
      chip("apps", `${running} / ${snap.apps.length} running`),
      chip("re-plans", String(snap.stats.replans)),
    );
    const banner = document.getElementById("banner");
    banner.hidden = snap.ready;
    banner.textContent = snap.ready ? "" : "The coordinator is restoring its state.";
  }

  // -- devices ---------------------------------------------------------------------------

  function renderDevices(snap) {
    const cards = snap.devices.map((d) => {
      const port = d.board_port;
      const sensors = d.sensors.map((s) => `${s.type} ${fmt(s.rate_hz, 0)} Hz`).join(", ") || "none";
      const link = [d.link.name, rate(d.link.bandwidth_bytes_per_s)];
      if (d.medium) link.push(`on ${d.medium}${d.central ? " (central)" : ""}`);
      const rows = [
        row("board", boardText(d.board)),
        row("memory", `weights ${kib(d.board.weight_bytes)} · data ${kib(d.board.data_bytes)}`),
        row("sensors", sensors),
        row("outputs", d.outputs.join(", ") || "none"),
        row("link", link.join(" · ")),
      ];
      if (d.peer_links.length) {
        rows.push(row("peers", d.peer_links.map((p) => `${p.peer}: ${p.name}`).join(", ")));
      }
      if (port) {
        rows.push(row("port", `${port.path} @ ${port.baud} · fw ${port.firmware} · ${rate(port.measured_payload_bytes_per_s)}`, "board-port"));
      }
      const t = d.telemetry;
      rows.push(row("frames", `${t.frames_in} in · ${t.frames_out} out · ${t.frames_dropped} dropped`));
      const state = d.quarantine_reason ? "quarantined" : d.state;
      const card = el(
        "article",
        { class: `device device-${d.state}`, "data-device-id": d.device_id, "data-state": d.state },
        el("div", { class: "device-head" },
          el("span", { class: "device-id" }, d.device_id),
          d.kind && d.kind !== d.device_id ? el("span", { class: "device-kind" }, d.kind) : null,
          badge(state, state)),
        d.quarantine_reason ? el("p", { class: "quarantine" }, `quarantined: ${d.quarantine_reason}`) : null,
        el("dl", {}, rows),
      );
      // Through the CSSOM: the Content-Security-Policy refuses style attributes.
      card.style.setProperty("--device-color", deviceColor(d.device_id, 50));
      return card;
    });
    document.getElementById("devices").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "no device has registered")]));
  }

  function boardText(board) {
    // A board file may name its profile apart from the chip; say both only then.
    const chip = board.name.toLowerCase() === board.accelerator.toLowerCase() ? board.accelerator : `${board.name} (${board.accelerator})`;
    return `${chip} · ${fmt(board.cnn_clock_hz / 1e6, 0)} MHz`;
  }

  function kib(bytes) {
    return `${fmt(bytes / 1024, 0)} KiB`;
  }

  function row(label, value, cls) {
    return [el("dt", {}, label), el("dd", { class: cls }, value)];
  }

  // -- apps ------------------------------------------------------------------------------

  function recordHistory(snap) {
    const now = snap.generated_at_unix;
    const present = new Set();
    for (const app of snap.apps) {
      present.add(app.app_id);
      const points = history.get(app.app_id) || [];
      points.push({ t: now, rate: app.stats.rate_hz, latency: app.stats.latency_ms });
      while (points.length && points[0].t < now - HISTORY_S) points.shift();
      history.set(app.app_id, points);
    }
    for (const id of [...history.keys()]) if (!present.has(id)) history.delete(id);
  }

  function renderApps(snap) {
    const cards = snap.apps.map((app, index) => {
      const title = app.name && app.name !== app.app_id ? app.name : "";
      const reason = app.reason ? el("p", { class: "reason" }, app.reason) : null;
      const s = app.stats;
      const p = app.pipeline;
      return el(
        "article",
        { class: `app app-${app.state}`, "data-app-id": app.app_id, "data-state": app.state },
        el("div", { class: "app-head" },
          el("span", { class: "app-id" }, app.app_id),
          title ? el("span", { class: "app-name" }, title) : null,
          badge(app.state, app.state)),
        el("p", { class: "app-spec" },
          `${app.model} · ${app.source_type} → ${app.target_type}`,
          app.owner ? ` · owner ${app.owner}` : "",
          app.max_rate_hz ? ` · max ${fmt(app.max_rate_hz, 0)} Hz` : ""),
        reason,
        p ? pipeline(app, p, index) : el("p", { class: "no-pipeline" }, "not placed in the current plan"),
        el("div", { class: "charts" },
          chart("rate", `${fmt(s.rate_hz, 1)} frames/s`, p ? `planned ${fmt(p.predicted_rate_hz, 1)}` : "", app.app_id, "rate", "#2f7d4f"),
          chart("latency", `${fmt(s.latency_ms, 0)} ms`, p ? `planned ${fmt(p.predicted_latency_ms, 0)} ms` : "", app.app_id, "latency", "#3b5fb0")),
        el("p", { class: "counters" },
          `${s.frames_delivered} delivered · ${s.frames_dropped} dropped · ${s.frames_in_flight} in flight · ${s.frames_skipped} skipped at the sensor`),
      );
    });
    document.getElementById("apps").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "no app submitted")]));
    for (const canvas of document.querySelectorAll("canvas.spark")) drawSpark(canvas);
  }

  // The pipeline: source -> one box per stage (device, layers) -> target, in SVG.
  function pipeline(app, p, index) {
    const nodes = [{ kind: "source", device: p.source_device, label: app.source_type }];
    for (const stage of p.stages) {
      nodes.push({ kind: "stage", device: stage.device_id, label: `layers ${stage.first_layer}–${stage.last_layer}` });
    }
    nodes.push({ kind: "target", device: p.target_device, label: app.target_type });
    const w = 132, h = 46, gap = 30, pad = 4;
    const width = nodes.length * w + (nodes.length - 1) * gap + 2 * pad;
    const height = h + 2 * pad;
    const parts = [
      svg("defs", {}, svg("marker", { id: `arrow-${index}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#6b7280" }))),
    ];
    nodes.forEach((n, i) => {
      const x = pad + i * (w + gap);
      const parallel = n.kind === "stage" && p.parallel_devices.includes(n.device);
      parts.push(svg("g", { class: `node node-${n.kind}`, "data-device-id": n.device },
        svg("rect", { x, y: pad, width: w, height: h, rx: n.kind === "stage" ? 6 : 22, fill: deviceColor(n.device, 93), stroke: deviceColor(n.device, 45), "stroke-width": 1.5 }),
        svg("text", { x: x + w / 2, y: pad + 19, "text-anchor": "middle", class: "node-device" }, clip(n.device, 18)),
        svg("text", { x: x + w / 2, y: pad + 36, "text-anchor": "middle", class: "node-label" }, clip(n.label, 22)),
        svg("title", {}, `${n.kind}: ${n.device} — ${n.label}${parallel ? " (overlaps CPU, accelerator and radio across frames)" : ""}`)));
      if (i > 0) {
        parts.push(svg("line", { x1: x - gap + 2, y1: pad + h / 2, x2: x - 2, y2: pad + h / 2, stroke: "#6b7280", "stroke-width": 1.5, "marker-end": `url(#arrow-${index})` }));
      }
    });
    return el("div", { class: "pipeline" },
      svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `pipeline of ${app.app_id}` }, parts));
  }

  function clip(text, n) {
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  function chart(label, value, planned, appId, series, color) {
    return el("div", { class: "chart" },
      el("div", { class: "chart-head" },
        el("span", { class: "chart-label" }, label),
        el("span", { class: "chart-value" }, value),
        planned ? el("span", { class: "chart-plan" }, planned) : null),
      el("canvas", { class: "spark", width: 260, height: 44, "data-app-id": appId, "data-series": series, "data-color": color }));
  }

  // A line over the last HISTORY_S seconds, from zero to the window's maximum.
  function drawSpark(canvas) {
    const points = history.get(canvas.dataset.appId) || [];
    const series = canvas.dataset.series;
    const ratio = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 260, cssH = canvas.clientHeight || 44;
    canvas.width = Math.round(cssW * ratio);
    canvas.height = Math.round(cssH * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, cssW, cssH);
    const values = points.map((pt) => pt[series]).filter((v) => v !== null);
    if (points.length < 2 || !values.length) return;
    const tEnd = points[points.length - 1].t;
    const tStart = Math.max(points[0].t, tEnd - HISTORY_S);
    const span = Math.max(tEnd - tStart, 1);
    const max = Math.max(...values) * 1.15 || 1;
    const xy = (pt) => [((pt.t - tStart) / span) * (cssW - 2) + 1, cssH - 2 - ((pt[series] || 0) / max) * (cssH - 6)];
    ctx.beginPath();
    points.forEach((pt, i) => { const [x, y] = xy(pt); if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y); });
    ctx.strokeStyle = canvas.dataset.color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    const [xLast] = xy(points[points.length - 1]);
    const [xFirst] = xy(points[0]);
    ctx.lineTo(xLast, cssH);
    ctx.lineTo(xFirst, cssH);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = canvas.dataset.color;
    ctx.fill();
  }

  // -- epochs and re-plans ---------------------------------------------------------------

  function renderReplans(snap) {
    const now = snap.generated_at_unix;
    const r = snap.replans;
    const items = [];
    if (r.current) items.push(round(r.current, now, true));
    if (r.pending.length) {
      items.push(el("li", { class: "round round-pending" },
        el("div", { class: "round-head" }, el("span", { class: "round-epoch" }, "next round"), badge("waiting", "waiting")),
        causes(r.pending, 0)));
    }
    for (const done of r.recent) items.push(round(done, now, false));
    document.getElementById("replans").replaceChildren(
      items.length ? el("ol", { class: "rounds" }, items) : el("p", { class: "empty" }, "no re-plan yet"));
  }

  function round(r, now, running) {
    const outcome = running ? r.phase : r.outcome.replace(/_/g, " ");
    const epoch = r.epoch ? `epoch ${r.epoch}` : `round ${r.round_id}`;
    const when = running ? `since ${clock(r.started_at_unix)}` : `${clock(r.finished_at_unix)} · ${ago(r.finished_at_unix, now)}`;
    return el("li", { class: `round round-${running ? "running" : r.outcome}`, "data-epoch": r.epoch, "data-outcome": running ? "running" : r.outcome },
      el("div", { class: "round-head" },
        el("span", { class: "round-epoch" }, epoch),
        badge(outcome, running ? "running" : r.outcome),
        el("span", { class: "round-time" }, when)),
      r.detail ? el("p", { class: "round-detail" }, r.detail) : null,
      causes(r.causes, r.causes_dropped));
  }

  function causes(list, dropped) {
    const items = list.map((c) => el("li", { class: `cause cause-${c.kind}`, "data-kind": c.kind }, c.text));
    if (dropped) items.push(el("li", { class: "cause" }, `and ${dropped} more`));
    return items.length ? el("ul", { class: "causes" }, items) : null;
  }

  // -- the stream --------------------------------------------------------------------------

  function render(snap) {
    recordHistory(snap);
    renderSummary(snap);
    renderDevices(snap);
    renderApps(snap);
    renderReplans(snap);
    document.body.dataset.version = String(snap.version);
    document.body.dataset.epoch = String(snap.epoch);
  }

  function setConnection(state, text) {
    const node = document.getElementById("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  function connect() {
    const source = new EventSource("api/events");
    source.addEventListener("open", () => setConnection("live", "live"));
    source.addEventListener("error", () => setConnection("lost", "reconnecting…"));
    source.addEventListener("snapshot", (event) => {
      setConnection("live", "live");
      try {
        render(JSON.parse(event.data));
      } catch (err) {
        setConnection("lost", `cannot draw: ${err}`);
      }
    });
  }

  // Redraw the sparklines when the layout changes their width.
  window.addEventListener("resize", () => {
    for (const canvas of document.querySelectorAll("canvas.spark")) drawSpark(canvas);
  });
  connect();
})();
