"""In a real browser, an operator runs a container from the form, sees it listed, reads its log tail, stops it and
removes it; a bad field comes back marked on that field."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in

pytestmark = [pytest.mark.root, pytest.mark.slow]

# pid 1 ignores SIGTERM unless it handles it: trap it, so Stop takes a second instead of the 10 s kill timeout.
COMMAND = "sh -c \"trap 'exit 0' TERM; echo hello from the browser; while true; do sleep 1; done\""


def test_a_bad_field_is_marked_on_that_field_and_nothing_runs(stack, page):
    log_in(page, "olga")
    page.goto("/containers/run/")
    page.get_by_label("Image").fill("busybox")
    page.get_by_label("Team").select_option("red")
    page.get_by_label("Memory limit").fill("1k")
    page.get_by_label("Ports").fill("eighty")
    page.get_by_role("button", name="Run").click()

    alert = page.locator("#form-errors")
    assert "The container was not started" in alert.inner_text()
    memory = page.get_by_label("Memory limit")
    assert memory.get_attribute("aria-invalid") == "true"
    assert page.locator("#id_memory_error").inner_text() == "the minimum memory limit is 6m"
    assert "is not a port" in page.locator("#id_ports_error").inner_text()
    assert memory.input_value() == "1k"  # what was typed stays, to be corrected
    assert stack.engine.client().containers.list(all=True) == []


def test_an_operator_runs_reads_stops_and_removes_a_container(stack, page):
    log_in(page, "olga")
    page.goto("/containers/")
    page.get_by_role("button", name="Run a container").click()  # a link styled as a button (Pico)
    page.get_by_label("Image").fill("busybox")
    page.get_by_label("Name", exact=True).fill("web-1")
    page.get_by_label("Team").select_option("red")
    page.get_by_label("Command").fill(COMMAND)
    page.get_by_label("Environment").fill("GREETING=hi\nAPI_TOKEN=s3cret-value")
    page.get_by_label("Labels").fill("tier=web")
    page.get_by_label("Memory limit").fill("64m")
    page.get_by_label("PIDs limit").fill("50")
    page.get_by_role("button", name="Run").click()

    page.wait_for_url(re.compile(r"/containers/[0-9a-f]{64}/$"))
    cid = page.url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("#container-state").inner_text() == "running"
    attrs = stack.engine.client().api.inspect_container(cid)
    assert attrs["Config"]["Labels"] == {"dockweb.team": "red", "tier": "web"}
    assert attrs["HostConfig"]["Memory"] == 64 * 2 ** 20 and attrs["HostConfig"]["PidsLimit"] == 50

    # The secret is masked on the page, in the table and in the inspect JSON alike.
    body = page.content()
    assert "API_TOKEN" in body and "s3cret-value" not in body

    # The Logs tab follows the container's output live.
    page.get_by_role("tab", name="Logs").click()
    page.locator("#live-logs .log-row", has_text="hello from the browser").wait_for()
    download = page.request.get(f"/containers/{cid}/logs.txt")
    assert download.ok and download.text() == "hello from the browser\n"
    assert 'filename="web-1.log"' in download.headers["content-disposition"]

    page.goto("/containers/")
    row = page.get_by_role("row").filter(has_text="web-1")
    assert "running" in row.inner_text() and "red" in row.inner_text()
    page.get_by_label("Search").fill("nothing-like-this")
    page.get_by_text("No containers match").wait_for()  # htmx swapped the filtered table in
    page.get_by_label("Search").fill("web")
    row.wait_for()
    row.get_by_role("link", name="web-1").click()

    # Stop: htmx swaps the container's part of the page; no full reload.
    page.evaluate("window.__not_reloaded = true")
    page.get_by_role("button", name="Stop").click()
    page.locator("#container-state", has_text="exited").wait_for()
    assert page.evaluate("window.__not_reloaded") is True
    assert "stop:" in page.locator("#messages").inner_text()
    assert stack.engine.client().api.inspect_container(cid)["State"]["Status"] == "exited"

    page.get_by_role("button", name="Remove").click()  # the confirm() dialog is accepted by the fixture
    page.wait_for_url(re.compile(r"/containers/$"))
    assert "remove:" in page.locator("#messages").inner_text()
    assert page.get_by_role("link", name="web-1").count() == 0
    assert stack.engine.client().containers.list(all=True) == []
