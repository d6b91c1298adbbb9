"""In a real browser, an operator creates a backup policy for a volume, runs it now, follows the job to its end,
sees the backup in the volume's backups tab, and restores it into a new volume whose files are identical.
Screenshots of the backup pages go to docs/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import DESKTOP, SCREENSHOTS, log_in
from tests.integration import backup_stack as bs
from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)


def test_an_operator_creates_a_policy_runs_it_and_restores_into_a_new_volume(stack, page):
    from dockweb.volumes.models import Volume

    client = stack.engine.client()
    client.volumes.create("web-data", labels={"dockweb.team": "red"})
    client.volumes.create("cache-data", labels={"dockweb.team": "red"})
    assert wait_for(lambda: Volume.objects.filter(name="cache-data").exists(), timeout=10), stack.log_tail("events")
    root = stack.engine.root / "volumes" / "web-data" / "_data"
    bs.fill(root, marker="from the browser")

    log_in(page, "olga")
    page.goto("/backups/")
    assert "web-data" in page.locator("#uncovered").inner_text()
    page.get_by_role("button", name="New backup policy").click()
    page.get_by_label("Name").fill("nightly-web")
    page.get_by_label("Team", exact=True).select_option("red")
    page.get_by_label("Volume", exact=True).select_option("web-data")
    page.get_by_label("Schedule", exact=True).select_option("custom")
    page.get_by_label("Cron expression").fill("30 2 * * 1-5")
    page.get_by_label("Keep last").fill("3")
    shot(page, "backup-policy")
    page.get_by_role("button", name="Save policy").click()

    page.wait_for_url(re.compile(r"/backups/$"))
    row = page.locator("#policy-table tr", has_text="nightly-web")
    assert "never ran" in row.inner_text() and "30 2 * * 1-5" in row.inner_text()
    assert "web-data" not in page.locator("#uncovered").inner_text()
    row.get_by_role("button", name="Run now").click()

    # The job page follows the run until it ends (here jobs run in the web process, so it may be done already).
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    page.locator("#job-state", has_text="succeeded").wait_for(timeout=60000)
    assert "backed up web-data" in page.locator("#job").inner_text()
    shot(page, "backup-job")

    page.goto("/backups/")
    assert "succeeded" in page.locator("#policy-table tr", has_text="nightly-web").inner_text()
    shot(page, "backups")

    page.goto("/volumes/web-data/")
    page.get_by_role("link", name="Backups").last.click()
    page.wait_for_url(re.compile(r"/backups/volumes/web-data/$"))
    history = page.locator("#backup-table tbody tr")
    assert history.count() == 1 and "ok" in history.first.inner_text()
    shot(page, "volume-backups")

    history.first.get_by_role("button", name="Restore").click()
    assert "This replaces everything in volume web-data" in page.locator("#replace-warning").inner_text()
    page.get_by_label("New volume name").fill("web-data-restored")
    shot(page, "backup-restore")
    page.get_by_role("button", name="Restore into a new volume").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    page.locator("#job-state", has_text="succeeded").wait_for(timeout=60000)

    restored = stack.engine.root / "volumes" / "web-data-restored" / "_data"
    assert bs.tree(restored) == bs.tree(root)
    assert client.volumes.get("web-data-restored").attrs["Labels"]["dockweb.team"] == "red"


def test_a_viewer_sees_the_history_but_no_backup_actions(stack, page):
    log_in(page, "vera")
    page.goto("/backups/volumes/web-data/")
    assert page.locator("#backup-table").count() in (0, 1)
    body = page.content()
    assert "Back up now" not in body and "Restore</a>" not in body and "Upload" not in body
