"""In a real browser, the Stats tab's charts of a running container gain a point about every second, and so does
the host overview's chart."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]

POINTS = """(selector) => {
    const canvas = document.querySelector(selector);
    const chart = canvas && window.Chart && window.Chart.getChart(canvas);
    return chart ? chart.data.datasets[0].data.length : 0;
}"""


@pytest.fixture(scope="module")
def busy(stack):
    c = stack.engine.client().containers.run(
        "busybox", ["sh", "-c", "trap 'exit 0' TERM; while true; do :; done"], name="busy", detach=True,
        labels={"dockweb.team": "red"}, mem_limit="64m")
    assert wait_listed(stack, "busy"), stack.log_tail("events")
    return c.id


def test_the_container_charts_gain_points(stack, page, busy):
    log_in(page, "vera")
    page.goto(f"/containers/{busy}/#stats")
    page.wait_for_function(f"({POINTS})('canvas[data-chart=cpu]') >= 2")
    before = page.evaluate(f"({POINTS})('canvas[data-chart=cpu]')")
    page.wait_for_function(f"({POINTS})('canvas[data-chart=cpu]') >= {before + 2}", timeout=10000)
    for name in ("mem", "net", "blk", "pids"):
        assert page.evaluate(f"({POINTS})('canvas[data-chart={name}]')") >= before + 2
    # A busy loop uses CPU, and the memory limit shows in the memory chart's title.
    cpu = page.evaluate("Chart.getChart(document.querySelector('canvas[data-chart=cpu]')).data.datasets[0].data"
                        ".map((p) => p.y)")
    assert max(y for y in cpu if y is not None) > 5
    title = page.evaluate("Chart.getChart(document.querySelector('canvas[data-chart=mem]')).options.plugins.title.text")
    assert title == "Memory (limit 64 MiB)"
    assert "CPU" in page.locator("#live-stats .stats-now").inner_text()


def test_the_host_overview_chart_gains_points(stack, page, busy):
    log_in(page, "olga")
    page.goto("/")
    selector = ".host-stats canvas[data-chart=cpu]"
    page.wait_for_function(f"({POINTS})('{selector}') >= 2")
    before = page.evaluate(f"({POINTS})('{selector}')")
    page.wait_for_function(f"({POINTS})('{selector}') >= {before + 2}", timeout=10000)
    page.locator(".host-stats .stats-top tbody tr", has_text="busy").wait_for()
