"""Screenshots of a container's Logs, Terminal and Stats tabs and of the host overview's live chart, in light and
dark mode, saved to docs/screenshots/ for the README."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS, log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]

APP = r"""trap 'exit 0' TERM
i=0
while true; do
  i=$((i+1))
  printf '\033[32mINFO\033[0m  GET /api/orders/%d 200 \033[2m%dms\033[0m\n' $i $((i % 37 + 3))
  if [ $((i % 7)) -eq 0 ]; then printf '\033[33mWARN\033[0m  slow query on orders (%d ms)\n' $((i * 13 % 900)) ; fi
  if [ $((i % 11)) -eq 0 ]; then echo "ERROR payment gateway timed out for order $i" >&2; fi
  j=0; while [ $j -lt 20000 ]; do j=$((j+1)); done
  usleep 150000
done"""


def wait_points(page, n: int) -> None:
    page.wait_for_function(f"""() => {{
        const canvas = document.querySelector("canvas[data-chart=cpu]");
        const chart = canvas && window.Chart && window.Chart.getChart(canvas);
        return chart && chart.data.datasets[0].data.length >= {n};
    }}""", timeout=30000)


def test_screenshots_of_the_live_tabs_in_light_and_dark(stack, page):
    c = stack.engine.client().containers.run("busybox", ["sh", "-c", APP], name="orders-api", detach=True,
                                             labels={"dockweb.team": "red"}, mem_limit="128m")
    assert wait_listed(stack, "orders-api"), stack.log_tail("events")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    log_in(page, "olga")
    saved = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"/containers/{c.id}/#logs")
        page.locator("#live-logs .log-row", has_text="ERROR").first.wait_for(timeout=15000)
        page.get_by_label("Timestamps").check()
        page.get_by_label("Search the whole log").fill("WARN")
        page.get_by_role("button", name="Search", exact=True).click()
        page.locator(".log-results .log-result").first.wait_for()
        saved.append(SCREENSHOTS / f"live-logs-{scheme}.png")
        page.screenshot(path=str(saved[-1]), full_page=True)

        page.get_by_role("tab", name="Terminal").click()
        page.get_by_role("button", name="Open a terminal").click()
        page.locator("#live-terminal[data-state=open]").wait_for()
        page.keyboard.type("ls -la --color=always /; ps\n")
        page.wait_for_function("""() => {
            const b = document.getElementById("live-terminal").liveTerminal.term.buffer.active;
            for (let i = 0; i < b.length; i++) if (b.getLine(i).translateToString(true).includes("PID")) return true;
            return false;
        }""")
        saved.append(SCREENSHOTS / f"live-terminal-{scheme}.png")
        page.screenshot(path=str(saved[-1]), full_page=True)
        page.keyboard.type("exit\n")
        page.locator("#live-terminal[data-state=exited]").wait_for()

        page.get_by_role("tab", name="Stats").click()
        wait_points(page, 12)
        saved.append(SCREENSHOTS / f"live-stats-{scheme}.png")
        page.screenshot(path=str(saved[-1]), full_page=True)

        page.goto("/")
        wait_points(page, 8)
        saved.append(SCREENSHOTS / f"live-overview-{scheme}.png")
        page.screenshot(path=str(saved[-1]), full_page=True)
    assert all(p.stat().st_size > 10_000 for p in saved)


def test_the_live_tabs_do_not_scroll_sideways_at_phone_width(stack, page):
    client = stack.engine.client()
    c = client.containers.get("orders-api") if client.containers.list(filters={"name": "orders-api"}) else \
        client.containers.run("busybox", ["sh", "-c", APP], name="orders-api", detach=True,
                              labels={"dockweb.team": "red"})
    assert wait_listed(stack, "orders-api"), stack.log_tail("events")
    page.set_viewport_size(PHONE)
    log_in(page, "olga")
    for tab in ("logs", "terminal", "stats"):
        page.goto(f"/containers/{c.id}/#{tab}")
        if tab == "logs":
            page.locator("#live-logs .log-row").first.wait_for()
        elif tab == "terminal":
            page.get_by_role("button", name="Open a terminal").click()
            try:
                page.locator("#live-terminal[data-state=open]").wait_for()
            except Exception:
                raise AssertionError(page.locator("#live-terminal").evaluate(
                    "(t) => t.dataset.state + ' / ' + t.querySelector('.term-notice').textContent")) from None
        else:
            wait_points(page, 2)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the {tab} tab scrolls sideways by {overflow}px at phone width"
    page.screenshot(path=str(SCREENSHOTS / "live-stats-phone.png"), full_page=True)
