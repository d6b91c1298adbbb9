// Live stats charts (Chart.js, loaded as its UMD build: window.Chart): a container's CPU, memory, network,
// block I/O and pids, or a host's totals, over the last POINTS samples (about one a second). Counters
// (network, block I/O) are drawn as rates; a counter that goes backwards (a restart) leaves a gap.

import { LiveSocket } from "./socket.js";

const POINTS = 120;

export function formatBytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${value < 0 ? "-" : ""}${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}

function formatClock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                           hourCycle: "h23" });
}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

// Colours picked to read on both Pico themes.
const SERIES = ["#1769aa", "#c2410c", "#15803d", "#7c3aed", "#b91c1c"];

function makeChart(canvas, { label, series, format, suggestedMax, whole = false }) {
  const muted = cssVar("--pico-muted-color", "#6b7280");
  const grid = cssVar("--pico-muted-border-color", "#e5e7eb");
  return new window.Chart(canvas, {
    type: "line",
    data: {
      datasets: series.map((name, i) => ({
        label: name, data: [], borderColor: SERIES[i], backgroundColor: `${SERIES[i]}33`, borderWidth: 1.5,
        pointRadius: 0, tension: 0, fill: series.length === 1, spanGaps: false,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        legend: { display: series.length > 1, labels: { color: muted, boxWidth: 12 } },
        title: { display: true, text: label, color: muted, align: "start" },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${format(ctx.parsed.y)}`,
                                title: (items) => (items.length ? formatClock(items[0].parsed.x) : "") } },
      },
      scales: {
        x: { type: "linear", ticks: { color: muted, maxTicksLimit: 6, callback: (v) => formatClock(v) },
             grid: { color: grid } },
        y: { beginAtZero: true, suggestedMax,
             ticks: { color: muted, maxTicksLimit: 5, precision: whole ? 0 : undefined, callback: (v) => format(v) },
             grid: { color: grid } },
      },
    },
  });
}

// Re-colour axes and labels when the page switches between light and dark.
function recolour(charts) {
  const muted = cssVar("--pico-muted-color", "#6b7280");
  const grid = cssVar("--pico-muted-border-color", "#e5e7eb");
  for (const chart of charts) {
    const o = chart.options;
    o.plugins.legend.labels.color = muted;
    o.plugins.title.color = muted;
    for (const axis of [o.scales.x, o.scales.y]) {
      axis.ticks.color = muted;
      axis.grid.color = grid;
    }
    chart.update("none");
  }
}

function watchTheme(charts) {
  const again = () => requestAnimationFrame(() => recolour(charts));
  new MutationObserver(again).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", again);
}

// A fixed window of the last POINTS seconds, so the first samples do not stretch across the whole chart.
function slide(chart, t) {
  chart.options.scales.x.min = t - POINTS;
  chart.options.scales.x.max = t;
  chart.update("none");
}

function push(dataset, x, y) {
  dataset.data.push({ x, y });
  if (dataset.data.length > POINTS) dataset.data.splice(0, dataset.data.length - POINTS);
}

// A rate from two samples of a counter, or null when there is no earlier sample or the counter went backwards.
function rate(previous, current, field) {
  if (!previous || previous[field] == null || current[field] == null) return null;
  const dt = current.t - previous.t;
  const d = current[field] - previous[field];
  return dt > 0 && d >= 0 ? d / dt : null;
}

const percent = (v) => `${Number(v).toFixed(v < 10 ? 1 : 0)} %`;
const perSecond = (v) => `${formatBytes(v)}/s`;
const count = (v) => String(Math.round(v));

export class ContainerStats {
  // root holds data-ws and one <canvas data-chart="cpu|mem|net|blk|pids"> per chart, and a .stats-now line.
  constructor(root) {
    this.root = root;
    this.now = root.querySelector(".stats-now");
    this.previous = null;
    const canvas = (name) => root.querySelector(`canvas[data-chart=${name}]`);
    this.charts = {
      cpu: makeChart(canvas("cpu"), { label: "CPU", series: ["CPU %"], format: percent, suggestedMax: 100 }),
      mem: makeChart(canvas("mem"), { label: "Memory", series: ["used"], format: formatBytes, suggestedMax: 1048576 }),
      net: makeChart(canvas("net"), { label: "Network", series: ["received", "sent"], format: perSecond,
                                      suggestedMax: 1024 }),
      blk: makeChart(canvas("blk"), { label: "Block I/O", series: ["read", "written"], format: perSecond,
                                      suggestedMax: 1024 }),
      pids: makeChart(canvas("pids"), { label: "Processes", series: ["pids"], format: count, whole: true,
                                        suggestedMax: 4 }),
    };
    watchTheme(Object.values(this.charts));
    this.connect();
    // The engine's stats stream ends when the container stops: start again when it starts again.
    document.addEventListener("dockweb:live-event", (event) => {
      const e = event.detail;
      if (e.kind === "container" && e.action === "start" && e.id === root.dataset.container) {
        this.socket.close();
        this.previous = null;
        this.connect();
      }
    });
  }

  connect() {
    this.socket = new LiveSocket(this.root.dataset.ws, {
      onMessage: (msg) => {
        if (msg.type === "stats") this.add(msg);
        else if (msg.type === "error") this.say(msg.message || "The stats stream failed.", true);
      },
      onState: (state, detail) => {
        if (state === "refused") this.say(detail, true);
        else if (state === "reconnecting") this.say("Connection lost: reconnecting…", true);
      },
    });
  }

  say(text, problem = false) {
    this.now.textContent = text;
    this.now.classList.toggle("field-error", problem);
  }

  add(s) {
    const c = this.charts;
    const t = s.t || Date.now() / 1000;
    const p = this.previous;
    push(c.cpu.data.datasets[0], t, s.cpu ?? null);
    push(c.mem.data.datasets[0], t, s.mem ?? null);
    const limit = s.mem_limit || 0;
    c.mem.options.plugins.title.text = limit ? `Memory (limit ${formatBytes(limit)})` : "Memory";
    push(c.net.data.datasets[0], t, rate(p, s, "net_rx"));
    push(c.net.data.datasets[1], t, rate(p, s, "net_tx"));
    push(c.blk.data.datasets[0], t, rate(p, s, "blk_read"));
    push(c.blk.data.datasets[1], t, rate(p, s, "blk_write"));
    push(c.pids.data.datasets[0], t, s.pids ?? null);
    this.previous = s;
    for (const chart of Object.values(c)) slide(chart, t);
    this.say(`CPU ${percent(s.cpu || 0)} · memory ${formatBytes(s.mem || 0)}${limit ? ` of ${formatBytes(limit)}` : ""}` +
             ` · network ↓${formatBytes(s.net_rx || 0)} ↑${formatBytes(s.net_tx || 0)}` +
             ` · block I/O ${formatBytes(s.blk_read || 0)} read, ${formatBytes(s.blk_write || 0)} written · ` +
             `${s.pids ?? 0} process${s.pids === 1 ? "" : "es"}`);
  }

  stop() {
    this.socket.close();
  }
}

export class HostStats {
  // root holds data-ws, <canvas data-chart="cpu|mem">, a .stats-now line and a .stats-top table body.
  constructor(root) {
    this.root = root;
    this.now = root.querySelector(".stats-now");
    this.top = root.querySelector(".stats-top tbody");
    const canvas = (name) => root.querySelector(`canvas[data-chart=${name}]`);
    this.charts = {
      cpu: makeChart(canvas("cpu"), { label: "CPU, all containers", series: ["CPU %"], format: percent }),
      mem: makeChart(canvas("mem"), { label: "Memory, all containers", series: ["used"], format: formatBytes }),
    };
    watchTheme(Object.values(this.charts));
    this.socket = new LiveSocket(root.dataset.ws, {
      onMessage: (msg) => { if (msg.type === "stats") this.add(msg); },
      onState: (state, detail) => {
        if (state === "refused") this.now.textContent = detail;
        else if (state === "reconnecting") this.now.textContent = "Connection lost: reconnecting…";
      },
    });
  }

  add(s) {
    const t = s.t || Date.now() / 1000;
    push(this.charts.cpu.data.datasets[0], t, s.cpu ?? null);
    push(this.charts.mem.data.datasets[0], t, s.mem ?? null);
    for (const chart of Object.values(this.charts)) slide(chart, t);
    const containers = Object.entries(s.containers || {});
    this.now.textContent = `${containers.length} running container${containers.length === 1 ? "" : "s"} · ` +
      `CPU ${percent(s.cpu || 0)} · memory ${formatBytes(s.mem || 0)}`;
    if (!this.top) return;
    containers.sort((a, b) => (b[1].cpu || 0) - (a[1].cpu || 0));
    const rows = containers.slice(0, 5).map(([id, c]) => {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = `/containers/${encodeURIComponent(id)}/`;
      link.textContent = c.name || id.slice(0, 12);
      name.appendChild(link);
      const cpu = document.createElement("td");
      cpu.className = "num";
      cpu.textContent = percent(c.cpu || 0);
      const mem = document.createElement("td");
      mem.className = "num";
      mem.textContent = formatBytes(c.mem || 0);
      tr.append(name, cpu, mem);
      return tr;
    });
    this.top.replaceChildren(...rows);
  }
}

export function startContainer(root) {
  if (!root || root.liveStats) return root && root.liveStats;
  root.liveStats = new ContainerStats(root);
  return root.liveStats;
}

export function startHost(root) {
  if (!root || root.liveStats) return root && root.liveStats;
  root.liveStats = new HostStats(root);
  return root.liveStats;
}
