"""The log view's pieces in chromium on a static page (no engine, no Daphne): ANSI colours become classes, log text
never becomes markup, and a virtual list of a million lines keeps a few dozen rows in the DOM and scrolls fast."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.unit.dockweb.support import REPO

pytestmark = [pytest.mark.root]

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/vendor/pico-2.1.1/pico.min.css">
<link rel="stylesheet" href="/static/live/live.css"></head>
<body><main class="container"><div class="log-view" id="view" tabindex="0"></div><div id="out"></div></main>
<script type="module">
import { renderAnsi, parseAnsi, stripAnsi } from "/static/live/ansi.js";
import { VirtualList } from "/static/live/virtual-list.js";
import { tKey, justAfter, matchRanges } from "/static/live/logs.js";
window.live = { renderAnsi, parseAnsi, stripAnsi, VirtualList, tKey, justAfter, matchRanges };
window.ready = true;
</script></body></html>"""


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/page.html":
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def guess_type(self, path):
        return "text/javascript" if str(path).endswith((".js", ".mjs")) else super().guess_type(path)

    def translate_path(self, path):
        # /static/<x> -> REPO/static/<x>; nothing else is served.
        path = path.split("?", 1)[0]
        if not path.startswith("/static/"):
            return str(REPO / "nonexistent")
        return super().translate_path(path[len("/static"):])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def static_page():
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(REPO / "static")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    profile = tempfile.mkdtemp(prefix="dockweb-test-chromium-")
    manager = sync_playwright()
    playwright = manager.start()
    context = None
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=DESKTOP)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/page.html")
        page.wait_for_function("window.ready === true")
        page.errors = errors
        yield page
    finally:
        if context is not None:
            context.close()
        manager.__exit__(None, None, None)
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)


def render(page, line: str) -> dict:
    return page.evaluate("""(line) => {
        const out = document.getElementById("out");
        out.replaceChildren();
        live.renderAnsi(out, line);
        return {html: out.innerHTML, text: out.textContent,
                spans: [...out.querySelectorAll("span")].map((s) => ({text: s.textContent, cls: s.className,
                                                                       color: s.style.color}))};
    }""", line)


def test_sgr_colours_become_classes_and_other_escapes_are_dropped(static_page):
    got = render(static_page, "\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[0m \x1b[94mbright\x1b[39m "
                              "\x1b[43mon yellow\x1b[49m \x1b[38;5;208m256\x1b[0m \x1b[2K\x1b]0;title\x07end")
    assert got["text"] == "red plain bold green bright on yellow 256 end"
    spans = {s["text"]: s for s in got["spans"]}
    assert spans["red"]["cls"] == "ansi-fg-1"
    assert spans["bold green"]["cls"] == "ansi-fg-10 ansi-bold"  # bold shows the bright variant
    assert spans["bright"]["cls"] == "ansi-fg-12"
    assert spans["on yellow"]["cls"] == "ansi-bg-3"
    assert spans["256"]["color"] == "rgb(255, 135, 0)"
    assert "plain" not in spans


def test_a_log_line_with_html_is_shown_as_text(static_page):
    line = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\x1b[31m<b>bold?</b>'
    got = render(static_page, line)
    assert got["text"] == '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold?</b>'
    assert static_page.evaluate("document.querySelectorAll('#out img, #out script, #out b').length") == 0
    static_page.wait_for_timeout(100)
    assert static_page.evaluate("window.pwned") is None


def test_times_compare_whatever_their_digits_and_the_bound_after_a_time_includes_it(static_page):
    assert static_page.evaluate("live.tKey('2026-11-27T20:00:00.1Z')") == "2026-11-27T20:00:00.100000000"
    assert static_page.evaluate("live.tKey('2026-11-27T20:00:00Z')") == "2026-11-27T20:00:00.000000000"
    assert static_page.evaluate("live.justAfter('2026-11-27T20:00:00.123456789Z')") == "2026-11-27T20:00:00.123456790Z"
    assert static_page.evaluate("live.justAfter('2026-11-27T23:59:59.999999999Z')") == "2026-11-28T00:00:00.000000000Z"
    assert static_page.evaluate("live.matchRanges('an Error and an error', 'error', false)") == [[16, 21]]
    assert static_page.evaluate("live.matchRanges('an Error', 'error', false)") == [[3, 8]]
    assert static_page.evaluate("live.matchRanges('id=42 id=7', 'id=\\\\d+', true)") == [[0, 5], [6, 10]]


def test_a_million_lines_keep_few_rows_in_the_dom_and_scroll_fast(static_page):
    result = static_page.evaluate("""async () => {
        const view = document.getElementById("view");
        const list = new live.VirtualList(view, {rowHeight: 18, overscan: 20, renderRow: (line, i) => {
            const row = document.createElement("div");
            row.className = "log-row";
            row.dataset.index = i;
            live.renderAnsi(row, line.l);
            return row;
        }});
        const lines = new Array(1000000);
        for (let i = 0; i < lines.length; i++) lines[i] = {t: "", s: "out", l: `line ${i} \\x1b[32mok\\x1b[0m`};
        list.setItems(lines);
        list.scrollToBottom();
        await new Promise(requestAnimationFrame);
        const rowsAtBottom = view.querySelectorAll(".log-row").length;
        const lastText = view.querySelector(".log-row:last-child").textContent;
        // 200 jumps across the whole list, each rendered synchronously.
        const start = performance.now();
        for (let k = 0; k < 200; k++) {
            view.scrollTop = Math.random() * view.scrollHeight;
            list.render();
        }
        const perJump = (performance.now() - start) / 200;
        list.scrollToIndex(500000);
        const top = list.firstVisible();
        const shown = [...view.querySelectorAll(".log-row")].map((r) => Number(r.dataset.index));
        // The row at the top of the view is on screen where the list says it is.
        const viewTop = view.getBoundingClientRect().top;
        const row = view.querySelector(`.log-row[data-index="${top}"]`);
        const offset = row.getBoundingClientRect().top - viewTop;
        return {rowsAtBottom, lastText, perJump, top, shownMin: Math.min(...shown), shownMax: Math.max(...shown),
                offset, spacer: view.scrollHeight};
    }""")
    assert result["rowsAtBottom"] < 120, result
    assert result["lastText"] == "line 999999 ok"
    assert result["perJump"] < 15, result  # milliseconds per full re-render of the rows in view
    assert result["top"] == 500000 and result["shownMin"] <= 500000 <= result["shownMax"]
    assert -18 < result["offset"] <= 0, result
    assert result["spacer"] <= 8_000_000  # past the browsers' element height limits, positions are scaled
    assert static_page.errors == []
