// ANSI SGR colours of one log line -> DOM nodes built with textContent and classes only: log text can never
// become markup. Each line is parsed on its own (loggers reset colours at the end of a line, and a virtual list
// renders lines out of order); every other escape sequence (cursor moves, OSC titles) is dropped.

// CSI ... final byte, OSC ... BEL or ST, and two-byte escapes.
const ESCAPES = /\x1b\[([0-9;:?]*)([\x40-\x7e])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

function freshState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
}

// An xterm 256-colour index (16..255) as an rgb() string: the 6x6x6 cube, then the grey ramp.
export function xterm256(n) {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const level = (c) => (c === 0 ? 0 : 55 + c * 40);
  return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
}

// A colour is a palette index 0..15 (themed by CSS classes) or an "rgb(...)" string (256 and true colour).
function extendedColour(params, i) {
  if (params[i + 1] === 5 && params.length > i + 2) {
    const n = params[i + 2];
    if (n >= 0 && n <= 15) return { colour: n, used: 3 };
    if (n >= 16 && n <= 255) return { colour: xterm256(n), used: 3 };
    return { colour: null, used: 3 };
  }
  if (params[i + 1] === 2 && params.length > i + 4) {
    const [r, g, b] = params.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v || 0)));
    return { colour: `rgb(${r},${g},${b})`, used: 5 };
  }
  return { colour: null, used: 1 };
}

function applySgr(state, text) {
  const params = text === "" ? [0] : text.split(/[;:]/).map((p) => (p === "" ? 0 : parseInt(p, 10)));
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (p === 0) Object.assign(state, freshState());
    else if (p === 1) state.bold = true;
    else if (p === 2) state.dim = true;
    else if (p === 3) state.italic = true;
    else if (p === 4) state.underline = true;
    else if (p === 7) state.inverse = true;
    else if (p === 22) { state.bold = false; state.dim = false; }
    else if (p === 23) state.italic = false;
    else if (p === 24) state.underline = false;
    else if (p === 27) state.inverse = false;
    else if (p >= 30 && p <= 37) state.fg = p - 30;
    else if (p >= 90 && p <= 97) state.fg = p - 90 + 8;
    else if (p >= 40 && p <= 47) state.bg = p - 40;
    else if (p >= 100 && p <= 107) state.bg = p - 100 + 8;
    else if (p === 39) state.fg = null;
    else if (p === 49) state.bg = null;
    else if (p === 38 || p === 48) {
      const { colour, used } = extendedColour(params, i);
      if (p === 38) state.fg = colour; else state.bg = colour;
      i += used - 1;
    }
  }
}

function styled(state) {
  return state.fg !== null || state.bg !== null || state.bold || state.dim || state.italic || state.underline ||
    state.inverse;
}

// Split a line into [{text, state}] runs; the state is a copy (or null for plain text).
export function parseAnsi(line) {
  const runs = [];
  const state = freshState();
  let last = 0;
  const push = (text) => {
    if (text) runs.push({ text, state: styled(state) ? { ...state } : null });
  };
  if (line.indexOf("\x1b") === -1) {
    push(line);
    return runs;
  }
  ESCAPES.lastIndex = 0;
  let m;
  while ((m = ESCAPES.exec(line)) !== null) {
    push(line.slice(last, m.index));
    last = ESCAPES.lastIndex;
    if (m[2] === "m") applySgr(state, m[1]);
    if (m[0] === "") ESCAPES.lastIndex++;  // never loop on an empty match
  }
  push(line.slice(last));
  return runs;
}

// Drop every escape sequence: the plain text a search or a copy sees.
export function stripAnsi(line) {
  return line.indexOf("\x1b") === -1 ? line : line.replace(ESCAPES, "");
}

function runElement(run) {
  const s = run.state;
  const span = document.createElement("span");
  span.textContent = run.text;
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) {
    [fg, bg] = [bg === null ? "inv-fg" : bg, fg === null ? "inv-bg" : fg];
  }
  // A bold palette colour 0..7 shows as its bright variant, as terminals do.
  if (s.bold && typeof fg === "number" && fg < 8) fg += 8;
  if (typeof fg === "number") span.classList.add(`ansi-fg-${fg}`);
  else if (fg === "inv-fg") span.classList.add("ansi-fg-inverse");
  else if (fg) span.style.color = fg;
  if (typeof bg === "number") span.classList.add(`ansi-bg-${bg}`);
  else if (bg === "inv-bg") span.classList.add("ansi-bg-inverse");
  else if (bg) span.style.backgroundColor = bg;
  if (s.bold) span.classList.add("ansi-bold");
  if (s.dim) span.classList.add("ansi-dim");
  if (s.italic) span.classList.add("ansi-italic");
  if (s.underline) span.classList.add("ansi-underline");
  return span;
}

// Append the line's runs to parent as text nodes and <span class="ansi-..."> elements; highlight marks the
// [start, end) ranges of the plain text (search hits) with <mark>.
export function renderAnsi(parent, line, highlight = null) {
  const runs = parseAnsi(line);
  if (!highlight || highlight.length === 0) {
    for (const run of runs) parent.appendChild(run.state ? runElement(run) : document.createTextNode(run.text));
    return parent;
  }
  // Cut runs at the highlight boundaries (offsets are in the plain text, escapes removed).
  let offset = 0;
  for (const run of runs) {
    const end = offset + run.text.length;
    const cuts = new Set([offset, end]);
    for (const [a, b] of highlight) {
      if (a > offset && a < end) cuts.add(a);
      if (b > offset && b < end) cuts.add(b);
    }
    const points = [...cuts].sort((x, y) => x - y);
    for (let i = 0; i < points.length - 1; i++) {
      const piece = { text: run.text.slice(points[i] - offset, points[i + 1] - offset), state: run.state };
      const node = piece.state ? runElement(piece) : document.createTextNode(piece.text);
      const hit = highlight.some(([a, b]) => points[i] >= a && points[i + 1] <= b);
      if (hit) {
        const mark = document.createElement("mark");
        mark.appendChild(node);
        parent.appendChild(mark);
      } else {
        parent.appendChild(node);
      }
    }
    offset = end;
  }
  return parent;
}
