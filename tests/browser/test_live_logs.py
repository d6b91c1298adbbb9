"""In a real browser, the Logs tab of a container: new lines show within a second of being written, earlier history
loads when scrolled to the top, search finds lines outside what is loaded, stderr is marked, ANSI colours render,
and a line holding HTML shows as text."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]

HISTORY = ("seq 1 5000 | sed 's/^17$/needle-in-history/'; "
           "echo '<img src=x onerror=window.pwned=1><b>not bold</b>'; "
           "printf '\\033[31mred alert\\033[0m and plain\\n'; "
           "echo 'to-stderr' >&2; "
           "trap 'exit 0' TERM; while true; do sleep 1; done")
TICKER = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo \"tick $i\"; usleep 200000; done"


@pytest.fixture(scope="module")
def containers(stack):
    client = stack.engine.client()
    history = client.containers.run("busybox", ["sh", "-c", HISTORY], name="history", detach=True,
                                    labels={"dockweb.team": "red"})
    ticker = client.containers.run("busybox", ["sh", "-c", TICKER], name="ticker", detach=True,
                                   labels={"dockweb.team": "red"})
    for name in ("history", "ticker"):
        assert wait_listed(stack, name), stack.log_tail("events")
    return {"history": history.id, "ticker": ticker.id}


def open_logs(page, cid: str) -> None:
    page.goto(f"/containers/{cid}/#logs")
    page.locator("#live-logs .log-row").first.wait_for()


def loaded(page) -> int:
    return page.evaluate("document.getElementById('live-logs').liveLogs.list.length")


def test_a_new_line_shows_within_a_second_of_being_written(stack, page, containers):
    log_in(page, "vera")  # a viewer may read logs
    open_logs(page, containers["ticker"])
    # Watch rows appear for three seconds; each new line's delay is from its engine timestamp to its row.
    delays = page.evaluate("""() => new Promise((resolve) => {
        const view = document.querySelector("#live-logs .log-view");
        const viewer = document.getElementById("live-logs").liveLogs;
        const seen = new Map();
        const observer = new MutationObserver(() => {
            for (const row of view.querySelectorAll(".log-row")) {
                const text = row.querySelector(".log-text").textContent;
                if (seen.has(text)) continue;
                seen.set(text, Date.now());
            }
        });
        const start = Date.now();
        // Rows already there are not new.
        for (const row of view.querySelectorAll(".log-row")) seen.set(row.querySelector(".log-text").textContent, 0);
        observer.observe(view, {childList: true, subtree: true});
        setTimeout(() => {
            observer.disconnect();
            const delays = [];
            for (const line of viewer.list.items) {
                const shown = seen.get(line.l);
                if (!shown) continue;
                const written = Date.parse(line.t.replace(/(\\.\\d{3})\\d*Z$/, "$1Z"));
                if (written >= start) delays.push(shown - written);
            }
            resolve(delays);
        }, 3000);
    })""")
    assert len(delays) >= 8, delays  # about five lines a second
    assert max(delays) < 1000, delays


def test_scrolling_to_the_top_loads_earlier_lines(stack, page, containers):
    log_in(page, "olga")
    open_logs(page, containers["history"])
    page.wait_for_function("document.getElementById('live-logs').liveLogs.list.length >= 1000")
    assert loaded(page) == 1000  # the page opens on the last 1000 lines
    first = page.evaluate("document.getElementById('live-logs').liveLogs.list.items[0].l")
    page.locator("#live-logs .log-view").evaluate("(view) => { view.scrollTop = 0; }")
    page.wait_for_function("document.getElementById('live-logs').liveLogs.list.length > 1000")
    viewer_items = page.evaluate("document.getElementById('live-logs').liveLogs.list.items.map((l) => l.l)")
    # Earlier lines come before the first one loaded, in order, without a gap or a repeat.
    i = viewer_items.index(first)
    assert i >= 1000 and viewer_items[i - 1] == str(int(first) - 1)
    # The view stayed on the lines it showed: the first line loaded before is still near the top.
    top = page.evaluate("document.getElementById('live-logs').liveLogs.list.firstVisible()")
    assert abs(top - i) <= 2


def test_search_finds_a_line_outside_the_loaded_window_and_shows_it(stack, page, containers):
    log_in(page, "olga")
    open_logs(page, containers["history"])
    page.wait_for_function("document.getElementById('live-logs').liveLogs.list.length >= 1000")
    assert "needle-in-history" not in page.evaluate(
        "document.getElementById('live-logs').liveLogs.list.items.map((l) => l.l).join('\\n')")
    page.get_by_label("Search the whole log").fill("needle-in")
    page.get_by_role("button", name="Search", exact=True).click()
    result = page.locator(".log-results .log-result")
    result.first.wait_for()
    assert result.count() == 1 and "needle-in-history" in result.inner_text()
    result.click()
    hit = page.locator("#live-logs .log-row.log-hit")
    hit.wait_for()
    assert "needle-in-history" in hit.inner_text()
    assert hit.locator("mark").inner_text() == "needle-in"
    assert hit.is_visible()
    # The lines before it are there too, and the page no longer follows until asked.
    assert page.locator("#live-logs .log-row", has_text="16").count() >= 1
    page.get_by_role("button", name="Jump to the latest").click()
    page.locator("#live-logs .log-row", has_text="to-stderr").wait_for()

    # A regular expression, and a bad one answered with the server's message.
    page.get_by_label("Regular expression").check()
    page.get_by_label("Search the whole log").fill("^needle-[a-z]+-history$")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".log-results-note", has_text="1 match").wait_for()
    page.get_by_label("Search the whole log").fill("needle-(")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".log-results-note", has_text="invalid regular expression").wait_for()


def test_html_in_a_line_is_text_stderr_is_marked_and_colours_render(stack, page, containers):
    log_in(page, "olga")
    open_logs(page, containers["history"])
    row = page.locator("#live-logs .log-row", has_text="onerror")
    row.wait_for()
    assert row.locator(".log-text").inner_text() == "<img src=x onerror=window.pwned=1><b>not bold</b>"
    assert page.locator("#live-logs .log-view img, #live-logs .log-view b").count() == 0
    assert page.evaluate("window.pwned") is None
    red = page.locator("#live-logs .log-row", has_text="red alert").locator("span.ansi-fg-1")
    assert red.inner_text() == "red alert"
    err = page.locator("#live-logs .log-row", has_text="to-stderr")
    assert "log-err" in err.get_attribute("class")
    assert "log-err" not in row.get_attribute("class")
    # Timestamps show on demand.
    assert not row.locator(".log-ts").is_visible()
    page.get_by_label("Timestamps").check()
    assert row.locator(".log-ts").is_visible()
    assert row.locator(".log-ts").inner_text().startswith("20")


def test_pause_keeps_new_lines_aside_until_resume(stack, page, containers):
    log_in(page, "vera")
    open_logs(page, containers["ticker"])
    page.get_by_role("button", name="Pause").click()
    held = loaded(page)
    page.locator(".log-count", has_text="new while paused").wait_for(timeout=5000)
    assert loaded(page) == held  # nothing added to the view while paused
    page.get_by_role("button", name="Resume").click()
    assert loaded(page) > held
    # No line lost or doubled across the pause: the ticks are consecutive.
    ticks = page.evaluate("document.getElementById('live-logs').liveLogs.list.items.map((l) => l.l)")
    numbers = [int(t.split()[1]) for t in ticks]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_a_time_range_shows_only_its_lines(stack, page, containers):
    log_in(page, "vera")
    open_logs(page, containers["ticker"])
    page.wait_for_function("document.getElementById('live-logs').liveLogs.list.length >= 5")
    # Until a second ago: a closed range, so the stream ends instead of following.
    until = page.evaluate("""() => {
        const d = new Date(Date.now() - 1000);
        const pad = (n) => String(n).padStart(2, "0");
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:` +
               `${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    }""")
    page.get_by_label("Until").fill(until)
    page.get_by_role("button", name="Apply").click()
    page.locator(".log-status", has_text="whole log").wait_for()
    last = page.evaluate("(() => { const i = document.getElementById('live-logs').liveLogs.list.items;"
                         " return i[i.length - 1].t; })()")
    limit = page.evaluate(f"new Date('{until}').getTime()")
    assert page.evaluate(f"Date.parse('{last[:23]}Z')") < limit + 1000
