// The live log viewer of a container: opens on the last lines and follows new ones over a websocket, loads
// earlier history when scrolled to the top, searches the whole log on the server, and renders only the rows in
// view (VirtualList). Log text only ever reaches the page through textContent (ansi.js builds the nodes).

import { renderAnsi, stripAnsi } from "./ansi.js";
import { refusal, wsUrl } from "./socket.js";
import { VirtualList } from "./virtual-list.js";

const ROW_HEIGHT = 18;          // px; matches .log-row in live.css
const TAIL = 1000;              // lines the page opens on
const WINDOW = 2000;            // lines per request for earlier history
const MAX_LINES = 1_000_000;    // memory cap: past it, lines are dropped (and re-fetched when scrolled back to)
const MAX_CHARS = 64_000_000;   // and past this many characters of text
const SHOWN_CHARS = 10_000;
const JUMP_PAGES = 50;          // windows fetched at most to reach a search match within one burst of lines     // a row shows at most this much of a line (the download has all of it)

// "2026-11-27T20:00:00.1234Z" -> "2026-11-27T20:00:00.123400000": comparable as strings whatever the digits.
export function tKey(t) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(t || "");
  if (!m) return t || "";
  return `${m[1]}.${(m[2] || "").padEnd(9, "0").slice(0, 9)}`;
}

// The RFC 3339 time one nanosecond after t (a "before" bound that includes t itself).
export function justAfter(t) {
  const key = tKey(t);
  let seconds = Date.parse(`${key.slice(0, 19)}Z`) / 1000;
  let nanos = parseInt(key.slice(20), 10) + 1;
  if (nanos >= 1e9) {
    seconds += 1;
    nanos = 0;
  }
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, "0")}Z`;
}

// "2026-11-27T20:00:00.5Z" -> "1795809600.500000000".
export function unixOfTime(t) {
  const key = tKey(t);
  return `${Date.parse(`${key.slice(0, 19)}Z`) / 1000}.${key.slice(20)}`;
}

// A datetime-local input's value (local time) as unix seconds, or "" when empty.
function unixOf(input) {
  if (!input || !input.value) return "";
  const ms = new Date(input.value).getTime();
  return Number.isNaN(ms) ? "" : String(Math.floor(ms / 1000));
}

// [start, end) ranges of query in text: a JS RegExp for regex searches, else plain (case-blind if nothing
// matches exactly). A pattern JS cannot compile (Python syntax) just highlights nothing.
export function matchRanges(text, query, regex) {
  const ranges = [];
  if (!query) return ranges;
  if (regex) {
    let re;
    try {
      re = new RegExp(query, "g");
    } catch (e) {
      return ranges;
    }
    let m;
    while ((m = re.exec(text)) !== null && ranges.length < 100) {
      if (m[0] === "") {
        re.lastIndex++;
        continue;
      }
      ranges.push([m.index, m.index + m[0].length]);
    }
    return ranges;
  }
  for (const haystack of [text, text.toLowerCase()]) {
    const needle = haystack === text ? query : query.toLowerCase();
    let i = haystack.indexOf(needle);
    while (i !== -1 && ranges.length < 100) {
      ranges.push([i, i + needle.length]);
      i = haystack.indexOf(needle, i + needle.length);
    }
    if (ranges.length) break;
  }
  return ranges;
}

function shownTime(t) {
  return (t || "").slice(0, 23).replace("T", " ");
}

export class LogViewer {
  constructor(root) {
    this.root = root;
    this.wsPath = root.dataset.ws;
    this.windowUrl = root.dataset.windowUrl;
    this.searchUrl = root.dataset.searchUrl;
    this.view = root.querySelector(".log-view");
    this.status = root.querySelector(".log-status");
    this.count = root.querySelector(".log-count");
    this.pauseButton = root.querySelector("[data-log-pause]");
    this.latestButton = root.querySelector("[data-log-latest]");
    this.since = root.querySelector("[name=since]");
    this.until = root.querySelector("[name=until]");
    this.timestamps = root.querySelector("[name=timestamps]");
    this.results = root.querySelector(".log-results");
    this.chars = 0;
    this.pending = [];
    this.skipped = 0;
    this.paused = false;
    this.ended = false;
    this.detached = false;   // the loaded lines do not reach the live end (after a search jump or a cap)
    this.oldestDone = false; // nothing earlier to load
    this.loadingOlder = false;
    this.hit = null;         // {index, ranges} of the search result shown
    this.ws = null;
    this.generation = 0;     // bumps on every reset: answers of an older generation are dropped
    this.retry = 500;
    this.list = new VirtualList(this.view, {
      rowHeight: ROW_HEIGHT,
      renderRow: (line, index) => this.renderRow(line, index),
      onScroll: () => this.scrolled(),
    });
    this.bind();
    this.connect(TAIL);
    // The forms would reload the page without this script: their buttons come disabled until now.
    for (const button of root.querySelectorAll("button[data-needs-js]")) button.disabled = false;
  }

  bind() {
    const root = this.root;
    this.timestamps.addEventListener("change", () => {
      root.classList.toggle("show-timestamps", this.timestamps.checked);
      this.list.invalidate();
    });
    root.classList.toggle("show-timestamps", this.timestamps.checked);
    this.pauseButton.addEventListener("click", () => (this.paused ? this.resume() : this.pause()));
    this.latestButton.addEventListener("click", () => this.reset());
    root.querySelector(".log-range").addEventListener("submit", (event) => {
      event.preventDefault();
      this.reset();
    });
    root.querySelector(".log-search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
    // A stopped container's stream ended; when it starts again (events.js says so), follow the new output.
    document.addEventListener("dockweb:live-event", (event) => {
      const e = event.detail;
      if (this.ended && e.kind === "container" && e.action === "start" && e.id === root.dataset.container) this.reset();
    });
    this.view.addEventListener("keydown", (event) => {
      // The view scrolls with the arrow and page keys natively; End jumps to the newest line, Home to the oldest.
      if (event.key === "End") {
        event.preventDefault();
        this.list.scrollToBottom();
      } else if (event.key === "Home") {
        event.preventDefault();
        this.list.scrollToIndex(0);
        this.scrolled();
      }
    });
  }

  setStatus(text, level = "") {
    this.status.textContent = text;
    this.status.className = `log-status${level ? ` log-status-${level}` : ""}`;
  }

  showCount() {
    const n = this.list.length;
    let text = `${n.toLocaleString()} line${n === 1 ? "" : "s"} loaded`;
    if (this.paused && this.pending.length) text += ` · ${this.pending.length.toLocaleString()} new while paused`;
    this.count.textContent = text;
  }

  renderRow(line, index) {
    const row = document.createElement("div");
    row.className = `log-row log-${line.s === "err" ? "err" : line.s === "marker" ? "marker" : "out"}`;
    if (this.hit && this.hit.index === index) row.classList.add("log-hit");
    if (line.s === "err") {
      row.title = "stderr";
      const src = document.createElement("span");
      src.className = "sr-only";
      src.textContent = "stderr: ";
      row.appendChild(src);
    }
    const ts = document.createElement("span");
    ts.className = "log-ts";
    ts.textContent = shownTime(line.t);
    row.appendChild(ts);
    const text = document.createElement("span");
    text.className = "log-text";
    let l = line.l || "";
    if (l.length > SHOWN_CHARS) l = `${l.slice(0, SHOWN_CHARS)} … (${(line.l.length - SHOWN_CHARS).toLocaleString()} more characters in the download)`;
    renderAnsi(text, l, this.hit && this.hit.index === index ? this.hit.ranges : null);
    row.appendChild(text);
    return row;
  }

  streamPath(tail, since) {
    const params = new URLSearchParams({ tail: String(tail) });
    const s = since || unixOf(this.since);
    const u = unixOf(this.until);
    if (s) params.set("since", s);
    if (u) params.set("until", u);
    return `${this.wsPath}?${params}`;
  }

  connect(tail, since = "") {
    const generation = this.generation;
    const ws = new WebSocket(wsUrl(this.streamPath(tail, since)));
    this.ws = ws;
    if (!since) this.setStatus("Connecting…");
    ws.addEventListener("open", () => {
      if (generation !== this.generation) return;
      this.retry = 500;
      this.setStatus(this.paused ? "Paused: new lines are kept until you resume." : "Following the log.");
    });
    ws.addEventListener("message", (event) => {
      if (generation !== this.generation || typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (msg.type === "lines") this.received(msg.lines || []);
      else if (msg.type === "end") {
        this.ended = true;
        this.setStatus("The container stopped: this is the whole log.");
      } else if (msg.type === "skipped") {
        this.received([{ t: "", s: "marker", l: `… ${msg.message || "some lines were skipped"} (the download has them) …` }]);
      } else if (msg.type === "error") this.setStatus(msg.message || "The log stream failed.", "error");
    });
    ws.addEventListener("close", (event) => {
      if (generation !== this.generation || this.ws !== ws) return;
      this.ws = null;
      const refused = refusal(event.code);
      if (refused) {
        this.setStatus(refused, "error");
        return;
      }
      if (this.ended || this.detached) return;
      // Pick up where the stream stopped: from the newest line held, duplicates dropped in received().
      this.setStatus("Connection lost: reconnecting…", "warn");
      setTimeout(() => {
        if (generation === this.generation && !this.ws) this.connect("all", this.newestTime());
      }, this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    });
  }

  disconnect() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  // The newest line's time as unix seconds with nanoseconds (what the engine's since takes), or "".
  newestTime() {
    for (const source of [this.pending, this.list.items]) {
      for (let i = source.length - 1; i >= 0; i--) if (source[i].t) return unixOfTime(source[i].t);
    }
    return "";
  }

  // Lines from the socket: dropped if already held (a reconnect repeats the newest second), else appended, or
  // kept aside while paused.
  received(lines) {
    if (this.detached || lines.length === 0) return;
    const source = this.pending.length ? this.pending : this.list.items;
    let newest = null;
    for (let i = source.length - 1; i >= 0 && !newest; i--) if (source[i].t) newest = source[i];
    if (newest && newest.t) {
      const key = tKey(newest.t);
      const held = new Set();
      for (let i = source.length - 1; i >= 0 && (!source[i].t || tKey(source[i].t) === key); i--) {
        if (source[i].t) held.add(source[i].s + source[i].l);
      }
      lines = lines.filter((line) => {
        if (!line.t) return true;  // a marker
        const k = tKey(line.t);
        return k > key || (k === key && !held.has(line.s + line.l));
      });
    }
    if (this.paused) {
      for (const line of lines) this.pending.push(line);
      if (this.pending.length > MAX_LINES) {
        const drop = this.pending.length - MAX_LINES;
        this.pending.splice(0, drop);
        this.skipped += drop;
      }
      this.showCount();
      return;
    }
    this.append(lines);
  }

  append(lines) {
    const follow = this.list.atBottom();
    for (const line of lines) this.chars += (line.l || "").length;
    this.list.append(lines);
    this.capFront();
    if (follow) this.list.scrollToBottom();
    this.showCount();
  }

  capFront() {
    let drop = Math.max(0, this.list.length - MAX_LINES);
    let chars = this.chars;
    const items = this.list.items;
    while (chars > MAX_CHARS && drop < items.length - 1) chars -= (items[drop++].l || "").length;
    if (drop === 0) return;
    // Drop a tenth more than needed so the splice does not run on every batch.
    drop = Math.min(items.length - 1, drop + Math.floor(MAX_LINES / 10));
    for (let i = 0; i < drop; i++) this.chars -= (items[i].l || "").length;
    if (this.hit) this.hit.index -= drop;
    this.list.dropFront(drop);
    this.oldestDone = false;
  }

  pause() {
    this.paused = true;
    this.pauseButton.textContent = "Resume";
    this.pauseButton.setAttribute("aria-pressed", "true");
    this.setStatus("Paused: new lines are kept until you resume.");
  }

  resume() {
    this.paused = false;
    this.pauseButton.textContent = "Pause";
    this.pauseButton.setAttribute("aria-pressed", "false");
    const lines = this.pending;
    this.pending = [];
    if (this.skipped) {
      lines.unshift({ t: lines.length ? lines[0].t : "", s: "marker",
                      l: `… ${this.skipped.toLocaleString()} lines skipped while paused (the download has them) …` });
      this.skipped = 0;
    }
    this.append(lines);
    this.list.scrollToBottom();
    if (!this.ended && !this.detached) this.setStatus("Following the log.");
  }

  // Start over: the last lines, following (after a change of since/until, or "Jump to the latest").
  reset() {
    this.generation += 1;
    this.disconnect();
    this.detached = false;
    this.ended = false;
    this.oldestDone = false;
    this.hit = null;
    this.pending = [];
    this.skipped = 0;
    this.chars = 0;
    this.latestButton.hidden = true;
    this.list.setItems([]);
    this.showCount();
    this.connect(TAIL);
  }

  detach(why) {
    this.generation += 1;
    this.disconnect();
    this.detached = true;
    this.latestButton.hidden = false;
    this.setStatus(why);
  }

  scrolled() {
    if (this.list.atTop() && !this.oldestDone && !this.loadingOlder && this.list.length) this.loadOlder();
  }

  // Lines before `before` (skip: how many of the lines at exactly `before` the page holds already).
  async fetchWindow(before, limit, skip = 0) {
    const params = new URLSearchParams({ before, limit: String(limit) });
    if (skip) params.set("skip", String(skip));
    const since = unixOf(this.since);
    if (since) params.set("since", since);
    const response = await fetch(`${this.windowUrl}?${params}`, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await this.errorText(response));
    const body = await response.json();
    let lines = body.lines || [];
    let more = Boolean(body.more);
    const sinceValue = unixOf(this.since);
    if (sinceValue) {
      const sinceKey = tKey(new Date(Number(sinceValue) * 1000).toISOString());
      const kept = lines.filter((line) => tKey(line.t) >= sinceKey);
      if (kept.length < lines.length) more = false;
      lines = kept;
    }
    return { lines, more };
  }

  async errorText(response) {
    try {
      const body = await response.json();
      if (body.error || body.message) return body.error || body.message;
    } catch (e) { /* not JSON */ }
    return `${response.status} ${response.statusText}`;
  }

  async loadOlder() {
    const generation = this.generation;
    const items = this.list.items;
    const first = items.find((line) => line.t);
    if (!first) return;
    // Several lines may share the oldest time: the server leaves out the ones held (skip), not all of them.
    const key = tKey(first.t);
    let skip = 0;
    for (const line of items) {
      if (!line.t) continue;
      if (tKey(line.t) !== key) break;
      skip++;
    }
    this.loadingOlder = true;
    this.view.setAttribute("aria-busy", "true");
    try {
      const { lines, more } = await this.fetchWindow(first.t, WINDOW, skip);
      if (generation !== this.generation) return;
      if (!more || lines.length === 0) this.oldestDone = true;
      for (const line of lines) this.chars += (line.l || "").length;
      if (this.hit) this.hit.index += lines.length;
      this.list.prepend(lines);
      this.capBack();
      this.showCount();
    } catch (e) {
      this.setStatus(`Could not load earlier lines: ${e.message}`, "error");
    } finally {
      this.loadingOlder = false;
      this.view.removeAttribute("aria-busy");
    }
  }

  // Past the cap while scrolling back: drop the newest lines; the live end is then a click away.
  capBack() {
    const over = this.list.length - MAX_LINES;
    if (over <= 0 && this.chars <= MAX_CHARS) return;
    const items = this.list.items;
    let drop = Math.max(0, over);
    let chars = this.chars;
    for (let i = 0; i < drop; i++) chars -= (items[items.length - 1 - i].l || "").length;
    while (chars > MAX_CHARS && drop < items.length - 1) chars -= (items[items.length - 1 - drop++].l || "").length;
    this.chars = chars;
    this.list.dropBack(drop);
    this.detach("Showing earlier lines only (memory cap): jump to the latest to follow again.");
  }

  async search() {
    const form = this.root.querySelector(".log-search");
    const query = form.querySelector("[name=q]").value;
    const regex = form.querySelector("[name=regex]").checked;
    const list = this.results.querySelector("ol");
    const note = this.results.querySelector(".log-results-note");
    list.replaceChildren();
    if (!query) {
      this.results.hidden = true;
      return;
    }
    this.results.hidden = false;
    note.textContent = "Searching…";
    const params = new URLSearchParams({ q: query, regex: regex ? "1" : "0", limit: "200" });
    const since = unixOf(this.since);
    const until = unixOf(this.until);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    let body;
    try {
      const response = await fetch(`${this.searchUrl}?${params}`, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await this.errorText(response));
      body = await response.json();
    } catch (e) {
      note.textContent = e.message;
      note.classList.add("field-error");
      return;
    }
    note.classList.remove("field-error");
    const matches = body.matches || [];
    note.textContent = matches.length === 0 ? "No line matches."
      : `${matches.length} match${matches.length === 1 ? "" : "es"}${body.truncated ? " (the first ones only: narrow the search)" : ""}.`;
    for (const match of matches) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = `log-result log-${match.s === "err" ? "err" : "out"}`;
      const ts = document.createElement("span");
      ts.className = "log-result-ts";
      ts.textContent = shownTime(match.t);
      const text = document.createElement("span");
      const plain = stripAnsi(match.l || "").slice(0, 500);
      renderAnsi(text, plain, matchRanges(plain, query, regex));
      button.append(ts, text);
      button.addEventListener("click", () => this.jumpTo(match, query, regex));
      item.appendChild(button);
      list.appendChild(item);
    }
  }

  // Show the lines up to a search match (from the server: it may be far outside what is loaded), highlighted.
  async jumpTo(match, query, regex) {
    const key = tKey(match.t);
    const items = this.list.items;
    let index = -1;
    for (let i = items.length - 1; i >= 0; i--) {
      if (tKey(items[i].t) === key && items[i].l === match.l) {
        index = i;
        break;
      }
    }
    if (index === -1) {
      this.detach("Showing the lines around a search result: jump to the latest to follow again.");
      const generation = this.generation;
      // Lines written in one burst share a time: page back from just after the match until it is found.
      let lines = [];
      let before = justAfter(match.t);
      let skip = 0;
      try {
        for (let pages = 0; pages < JUMP_PAGES && index === -1; pages++) {
          const got = await this.fetchWindow(before, WINDOW, skip);
          if (generation !== this.generation) return;
          lines = got.lines.concat(lines);
          for (let i = got.lines.length - 1; i >= 0; i--) {
            if (tKey(got.lines[i].t) === key && got.lines[i].l === match.l) {
              index = i;
              break;
            }
          }
          if (!got.more || got.lines.length === 0 || tKey(lines[0].t) < key) break;
          before = lines[0].t;
          skip = lines.findIndex((line) => tKey(line.t) !== tKey(before));
          if (skip === -1) skip = lines.length;
        }
      } catch (e) {
        this.setStatus(`Could not load the lines around the match: ${e.message}`, "error");
        return;
      }
      this.oldestDone = false;
      this.chars = lines.reduce((sum, line) => sum + (line.l || "").length, 0);
      this.list.setItems(lines);
      this.showCount();
    }
    if (index === -1) {
      this.setStatus("That line is no longer in the log.", "warn");
      return;
    }
    this.hit = { index, ranges: matchRanges(stripAnsi(match.l || ""), query, regex) };
    this.list.scrollToIndex(index, "center");
    this.list.invalidate();
  }
}

export function start(root) {
  if (!root || root.liveLogs) return root && root.liveLogs;
  root.liveLogs = new LogViewer(root);
  return root.liveLogs;
}
