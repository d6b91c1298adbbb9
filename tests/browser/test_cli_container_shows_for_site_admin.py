"""In a real browser, a container created with the docker CLI shows up for a site admin, unassigned, and stays
invisible to team members (404 on its page)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.requires_docker_cli]


def test_a_container_made_with_the_docker_cli_shows_up_for_a_site_admin(stack, page):
    r = stack.engine.docker("create", "--name", "cli-made", "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    # The events listener (a separate process, as under ./dockweb.sh up) brings it into the database.
    assert wait_listed(stack, "cli-made"), stack.log_tail("events")

    log_in(page, "admin")
    page.goto("/containers/")
    row = page.get_by_role("row").filter(has_text="cli-made")
    assert "unassigned" in row.inner_text() and "created" in row.inner_text()
    page.get_by_label("Team").select_option("none")
    page.get_by_role("row").filter(has_text="cli-made").wait_for()
    row.get_by_role("link", name="cli-made").click()
    assert page.get_by_role("heading", name="Ownership").is_visible()

    page.context.clear_cookies()
    log_in(page, "vera")
    page.goto("/containers/")
    assert page.get_by_role("link", name="cli-made").count() == 0
    response = page.goto(f"/containers/{cid}/")
    assert response.status == 404
    assert "No such container" in page.locator("#error-message").inner_text()
