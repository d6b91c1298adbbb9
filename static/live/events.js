// Live pages: listen to /ws/hosts/<id>/events/ and refresh the page's htmx fragments when an event says one of
// their objects changed. Debounced: a burst of events (a bulk stop) costs one request per fragment.
//
// Markup: an element with data-live-hosts="1 2" (the hosts to listen to), and fragments with an id and
//   data-live-refresh="container image"  the event kinds that refresh it
//   data-live-id="<engine id>"            optional: only events about this object
//   data-live-url="..."                   optional: where to fetch it (default: this page's URL)
//   data-live-swap="innerHTML"            optional: the list views answer htmx with the inner fragment
//                                          (default outerHTML, selecting the element's id from the page)

import { LiveSocket } from "./socket.js";

const QUIET_MS = 400;     // wait for the burst to end...
const MAX_WAIT_MS = 2000; // ...but not longer than this
const BUSY_RETRY_MS = 2000;

// Container actions that change nothing a page shows (a terminal opening is not worth a refresh).
const QUIET_ACTIONS = /^(exec_|attach|resize|top|export|archive-path|extract-to-dir|copy)/;

const dirty = new Map();  // element id -> {first, last: ms}
let timer = 0;

function matches(el, event) {
  const kinds = (el.dataset.liveRefresh || "").split(/\s+/);
  if (!kinds.includes(event.kind)) return false;
  const id = el.dataset.liveId;
  return !id || String(event.id || "").startsWith(id) || id.startsWith(String(event.id || "-"));
}

// A fragment the user is working in (a ticked checkbox, a focused field, an opened <details>) is refreshed
// later, not under them.
function busy(el) {
  if (el.querySelector("input[type=checkbox]:checked, details[open]")) return true;
  const focused = document.activeElement;
  return Boolean(focused && el.contains(focused) && focused.matches("input, select, textarea"));
}

function refresh(el) {
  const url = el.dataset.liveUrl || location.href;
  const swap = el.dataset.liveSwap || "outerHTML";
  const context = { target: `#${el.id}`, swap };
  if (swap === "outerHTML") context.select = `#${el.id}`;
  window.htmx.ajax("GET", url, context);
}

function flush() {
  timer = 0;
  const now = Date.now();
  let later = false;
  for (const [id, mark] of dirty) {
    const el = document.getElementById(id);
    if (!el) {
      dirty.delete(id);
      continue;
    }
    if (busy(el)) {
      later = true;
      continue;
    }
    if (now - mark.last < QUIET_MS && now - mark.first < MAX_WAIT_MS) {
      later = true;
      continue;
    }
    dirty.delete(id);
    refresh(el);
  }
  if (later) timer = setTimeout(flush, Math.min(QUIET_MS, BUSY_RETRY_MS));
}

// The object a detail page shows is gone: say so instead of fetching a page that now answers 404.
function gone(event) {
  const box = document.getElementById("messages");
  if (!box || box.querySelector(".flash-gone")) return;
  const p = document.createElement("p");
  p.className = "flash flash-warning flash-gone";
  p.setAttribute("role", "status");
  p.textContent = `This ${event.kind} was removed${event.name ? ` (${event.name})` : ""}.`;
  box.replaceChildren(p);
}

export function changed(event) {
  if (event.kind === "container" && QUIET_ACTIONS.test(event.action || "")) return;
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-live-refresh][id]")) {
    if (!matches(el, event)) continue;
    if (el.dataset.liveId && event.action === "destroy") {
      gone(event);
      continue;
    }
    const mark = dirty.get(el.id) || { first: now, last: now };
    mark.last = now;
    dirty.set(el.id, mark);
  }
  if (dirty.size && !timer) timer = setTimeout(flush, QUIET_MS);
  document.dispatchEvent(new CustomEvent("dockweb:live-event", { detail: event }));
}

export function listen() {
  const holder = document.querySelector("[data-live-hosts]");
  if (!holder || !window.htmx) return [];
  const hosts = holder.dataset.liveHosts.split(/[\s,]+/).filter(Boolean);
  return hosts.map((host) => new LiveSocket(`/ws/hosts/${encodeURIComponent(host)}/events/`, {
    onMessage: (msg) => { if (msg.type === "event") changed(msg); },
  }));
}

window.dockwebLiveEvents = listen();
