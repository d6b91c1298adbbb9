// A terminal in the page: xterm.js over the exec (or attach) websocket. Output arrives as binary frames written
// to xterm as bytes (it decodes UTF-8 split across frames); keystrokes go out as UTF-8 bytes; the size travels
// in-band. A dropped socket reconnects with the same session id (kept in sessionStorage), within the server's
// grace period, and the server replays the recent output.

import { Terminal } from "../vendor/xterm-6.0.0/xterm.mjs";
import { FitAddon } from "../vendor/xterm-addon-fit-0.11.0/addon-fit.mjs";
import { refusal, wsUrl } from "./socket.js";

const GRACE_MS = 60000;   // the server's default LIVE_EXEC_GRACE: past it the session is gone
const encoder = new TextEncoder();

function themeColours() {
  // The terminal stays dark in both page themes, like the log view: output is written for dark terminals.
  return { background: "#0d1117", foreground: "#d1d5db", cursor: "#d1d5db", selectionBackground: "#264f78" };
}

// "sh -c 'echo hi'" -> ["sh", "-c", "echo hi"]: words, single and double quotes, backslash escapes.
export function shellSplit(text) {
  const words = [];
  let word = null;
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? "";
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

export class LiveTerminal {
  // root: the element holding data-ws, data-kind ("exec" | "attach"), data-session-key, .term-screen,
  // .term-notice and (for exec) the .term-start form.
  constructor(root) {
    this.root = root;
    this.kind = root.dataset.kind || "exec";
    this.path = root.dataset.ws;
    this.storageKey = `dockweb-term:${root.dataset.sessionKey || this.path}`;
    this.screen = root.querySelector(".term-screen");
    this.notice = root.querySelector(".term-notice");
    this.form = root.querySelector(".term-start");
    this.term = null;
    this.fit = null;
    this.ws = null;
    this.session = null;
    this.startMsg = null;
    this.exited = false;
    this.lostAt = 0;
    this.retry = 250;
    this.timer = 0;
    // Leaving (or reloading) the page drops the socket: the grace period starts now.
    window.addEventListener("pagehide", () => {
      if (this.session) this.remember();
    });
    if (this.form) {
      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.startNew();
      });
      // Without this script the form would reload the page: its button comes disabled until now.
      for (const button of this.form.querySelectorAll("button[data-needs-js]")) button.disabled = false;
    }
    // A session of this tab that may still be alive (a reload, or a drop): resume it.
    const saved = this.savedSession();
    if (saved) this.open({ ...saved.start, session: saved.id });
    else if (this.kind === "attach") this.open({});
  }

  savedSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(this.storageKey) || "null");
      if (saved && saved.id && Date.now() - (saved.seen || 0) < GRACE_MS) return saved;
    } catch (e) { /* nothing usable */ }
    this.forget();
    return null;
  }

  remember() {
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify({ id: this.session, start: this.startMsg, seen: Date.now() }));
    } catch (e) { /* storage blocked: no resume after a reload, reconnects still work */ }
  }

  forget() {
    try {
      sessionStorage.removeItem(this.storageKey);
    } catch (e) { /* nothing to forget */ }
  }

  setNotice(text, level = "") {
    this.notice.textContent = text;
    this.notice.className = `term-notice${level ? ` term-notice-${level}` : ""}`;
    this.notice.hidden = !text;
  }

  startNew() {
    const data = new FormData(this.form);
    const cmd = String(data.get("cmd") || "").trim();
    const user = String(data.get("user") || "").trim();
    this.forget();
    this.open({ cmd: cmd ? shellSplit(cmd) : null, user });
  }

  ensureTerminal() {
    if (this.term) return;
    this.term = new Terminal({
      cursorBlink: true,
      convertEol: false,
      scrollback: 5000,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
      fontSize: 14,
      theme: themeColours(),
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.screen);
    this.term.onData((text) => this.sendBytes(encoder.encode(text)));
    // Binary input (some mouse reports) is a string of byte values, not text to encode.
    this.term.onBinary((text) => this.sendBytes(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));
    this.term.onResize(({ cols, rows }) => this.sendJson({ type: "resize", cols, rows }));
    const refit = () => {
      if (this.screen.offsetParent !== null) this.fit.fit();
    };
    if (window.ResizeObserver) new ResizeObserver(refit).observe(this.screen);
    window.addEventListener("resize", refit);
    refit();
  }

  // Open a socket and start (or resume, with start.session) a session.
  open(start) {
    this.ensureTerminal();
    this.closeSocket();
    clearTimeout(this.timer);
    this.exited = false;
    if (!start.session) {
      this.term.reset();
      this.lostAt = 0;
    }
    this.startMsg = { cmd: start.cmd ?? null, user: start.user || "" };
    this.root.classList.add("term-open");
    this.connect(start.session || null);
  }

  connect(session) {
    const ws = new WebSocket(wsUrl(this.path));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      if (this.screen.offsetParent !== null) this.fit.fit();
      const msg = { type: "start", cols: this.term.cols, rows: this.term.rows, session };
      if (this.kind === "exec") Object.assign(msg, this.startMsg);
      ws.send(JSON.stringify(msg));
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      if (typeof event.data !== "string") {
        this.term.write(new Uint8Array(event.data));
        return;
      }
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      this.handle(msg);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.root.dataset.state !== "exited") this.root.dataset.state = "closed";
      if (this.session) this.remember();
      const refused = refusal(event.code);
      if (refused) {
        // An error message sent before the close says more than the code.
        if (!this.exited) this.setNotice(refused, "error");
        this.exited = true;
        this.forget();
        return;
      }
      if (this.exited || !this.session) {
        if (!this.exited) this.setNotice("The terminal closed.", "warn");
        return;
      }
      this.reconnectLater();
    });
  }

  handle(msg) {
    if (msg.type === "session") {
      if (msg.resumed) {
        // The replay redraws the recent screen: start from a clean one rather than printing it twice.
        this.term.reset();
      }
      this.session = msg.id;
      this.lostAt = 0;
      this.retry = 250;
      this.root.dataset.state = "open";
      this.root.dataset.session = msg.id;
      this.remember();
      this.setNotice(msg.resumed ? "Reconnected: the session resumed." : "");
      if (msg.resumed) setTimeout(() => { if (this.notice.textContent.startsWith("Reconnected")) this.setNotice(""); }, 3000);
      // The size may have changed while disconnected.
      this.sendJson({ type: "resize", cols: this.term.cols, rows: this.term.rows });
      this.term.focus();
    } else if (msg.type === "exit") {
      this.exited = true;
      this.forget();
      this.session = null;
      this.root.dataset.state = "exited";
      this.setNotice(`The process exited${msg.code === undefined || msg.code === null ? "" : ` with code ${msg.code}`}.`);
    } else if (msg.type === "error") {
      this.exited = true;  // the server closes after an error: do not try to resume
      this.forget();
      this.session = null;
      this.setNotice(msg.message || "The terminal failed.", "error");
    }
  }

  reconnectLater() {
    if (!this.lostAt) this.lostAt = Date.now();
    if (Date.now() - this.lostAt > GRACE_MS) {
      this.forget();
      this.session = null;
      this.setNotice("The connection was lost for too long: the session has ended.", "error");
      return;
    }
    this.setNotice("Connection lost: reconnecting…", "warn");
    this.timer = setTimeout(() => {
      if (!this.ws) this.connect(this.session);
    }, this.retry);
    this.retry = Math.min(this.retry * 2, 4000);
  }

  sendBytes(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.session) this.ws.send(bytes);
  }

  sendJson(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.session) this.ws.send(JSON.stringify(msg));
  }

  closeSocket() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  // Fit again when the terminal's tab becomes visible (xterm cannot measure a hidden element).
  shown() {
    if (this.term && this.fit) {
      this.fit.fit();
      this.term.focus();
    }
  }
}

export function start(root) {
  if (!root || root.liveTerminal) return root && root.liveTerminal;
  root.liveTerminal = new LiveTerminal(root);
  return root.liveTerminal;
}
