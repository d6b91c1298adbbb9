// A job's page, live: /ws/jobs/<id>/ moves the progress bar, the state and the message, and grows the log as
// the job writes it. When the job finishes, the page's fragment is fetched once more (duration, error, the
// final log). Without a socket (refused, or it keeps failing) the fragment is polled instead.

import { refusal, wsUrl } from "./socket.js";

const DONE = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 1000;

function refreshFragment() {
  const job = document.getElementById("job");
  if (job && window.htmx) window.htmx.ajax("GET", job.dataset.url, { target: "#job", swap: "outerHTML" });
}

function logBox(job) {
  let pre = job.querySelector("pre.job-log");
  if (!pre) {
    pre = document.createElement("pre");
    pre.className = "log job-log";
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", "Job log");
    const waiting = job.querySelector(".job-log-waiting");
    if (waiting) waiting.replaceWith(pre);
    else job.appendChild(pre);
  }
  return pre;
}

function show(update) {
  const job = document.getElementById("job");
  if (!job) return;
  const state = job.querySelector("#job-state");
  if (state && update.state) {
    state.textContent = update.state;
    state.className = `badge job-${update.state}`;
  }
  const message = job.querySelector(".job-message");
  if (message) message.textContent = update.message || "";
  const bar = job.querySelector("progress");
  if (bar && typeof update.progress === "number") {
    bar.value = update.progress;
    bar.setAttribute("aria-valuetext", `${Math.round(update.progress * 100)} %`);
  }
  const percent = job.querySelector(".job-percent");
  if (percent && typeof update.progress === "number") percent.textContent = `${Math.round(update.progress * 100)} %`;
}

function appendLog(text, replace) {
  const job = document.getElementById("job");
  if (!job || (!text && !job.querySelector("pre.job-log"))) return;  // keep "Waiting for output…" until some
  const pre = logBox(job);
  const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
  if (replace) pre.textContent = text;
  else pre.appendChild(document.createTextNode(text));
  if (follow) pre.scrollTop = pre.scrollHeight;
}

function poll() {
  const timer = setInterval(() => {
    const job = document.getElementById("job");
    if (!job || job.dataset.done === "1") {
      clearInterval(timer);
      return;
    }
    refreshFragment();
  }, POLL_MS);
}

export function follow() {
  const job = document.getElementById("job");
  if (!job || job.dataset.done === "1" || !job.dataset.ws) return null;
  let first = true;
  let finished = false;
  let failures = 0;
  const connect = () => {
    const ws = new WebSocket(wsUrl(job.dataset.ws));
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      failures = 0;
      if (msg.type === "log") {
        // The first log message is the whole log so far; later ones are what was appended.
        appendLog(msg.text || "", first);
        first = false;
      } else if (msg.type === "job" && msg.job) {
        show(msg.job);
        if (DONE.has(msg.job.state)) {
          finished = true;
          ws.close(1000);
          refreshFragment();
        }
      }
    });
    ws.addEventListener("close", (event) => {
      if (finished) return;
      if (refusal(event.code) || ++failures > 3) {
        poll();
        return;
      }
      first = true;
      setTimeout(connect, 500 * failures);
    });
    return ws;
  };
  return connect();
}

window.dockwebLiveJob = follow();
