// Websocket helpers shared by the live pages: the URL of a /ws/ path on this origin, what a refusal code means,
// and a reconnecting JSON socket for the read-only streams (stats, events, jobs).

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// Close codes the server uses to refuse a socket before any data (see the live contract); reconnecting is futile.
export const REFUSALS = {
  4400: "This stream is not available for this container.",
  4401: "Your session has ended: log in again.",
  4403: "Your role does not allow this.",
  4404: "Not found, or not visible to you.",
};

export function refusal(code) {
  return REFUSALS[code] || null;
}

// A JSON socket that reconnects with backoff until closed by close() or refused (44xx).
// onMessage(msg), onState("open" | "reconnecting" | "refused" | "closed", detail).
export class LiveSocket {
  constructor(path, { onMessage, onState = () => {}, onOpen = null, maxDelay = 10000 }) {
    this.path = path;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onOpen = onOpen;
    this.maxDelay = maxDelay;
    this.delay = 500;
    this.closed = false;
    this.ws = null;
    this._timer = 0;
    this.connect();
  }

  connect() {
    const ws = new WebSocket(wsUrl(typeof this.path === "function" ? this.path() : this.path));
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.delay = 500;
      this.onState("open");
      if (this.onOpen) this.onOpen(ws);
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws || this.closed) return;
      const refused = refusal(event.code);
      if (refused) {
        this.closed = true;
        this.onState("refused", refused);
        return;
      }
      this.onState("reconnecting");
      this._timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, this.maxDelay);
    });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  close() {
    this.closed = true;
    clearTimeout(this._timer);
    if (this.ws) this.ws.close(1000);
    this.onState("closed");
  }
}
