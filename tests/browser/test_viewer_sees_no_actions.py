"""In a real browser, a viewer of the owning team sees a container and its logs but no action buttons, and a POST
forged from the viewer's own session (with a valid CSRF token) is refused and changes nothing."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_a_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(stack, page):
    from dockweb.core.models import AuditEntry

    c = stack.engine.client().containers.run("busybox", ["sh", "-c", "echo viewer can read this; exec sleep 300"],
                                             name="red-svc", labels={"dockweb.team": "red"}, detach=True)
    assert wait_listed(stack, "red-svc"), stack.log_tail("events")
    log_in(page, "vera")

    page.goto("/containers/")
    assert page.get_by_role("link", name="red-svc").is_visible()
    assert page.locator("input[name=refs]").count() == 0
    assert page.locator("button[name=action]").count() == 0
    assert page.get_by_role("button", name="Run a container").count() == 0

    page.get_by_role("link", name="red-svc").click()
    page.locator("#container-state", has_text="running").wait_for()
    for name in ("Start", "Stop", "Restart", "Kill", "Remove"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0, name
    page.get_by_role("tab", name="Logs").click()
    page.locator("#live-logs .log-row", has_text="viewer can read this").wait_for()
    assert page.get_by_role("tab", name="Terminal").count() == 0  # exec needs the operator role

    # A forged POST from this very page: the session cookie and a valid CSRF token, only the role is missing.
    status, text = page.evaluate("""async (url) => {
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
        const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
        return [r.status, await r.text()];
    }""", f"/containers/{c.id}/stop/")
    assert status == 403
    assert "needs the operator or admin role" in text
    assert stack.engine.client().api.inspect_container(c.id)["State"]["Status"] == "running"
    assert AuditEntry.objects.filter(action="container.stop", actor_name="vera", result="denied").exists()

    # The same without the CSRF token is refused before any permission check.
    status = page.evaluate("async (url) => (await fetch(url, {method: 'POST'})).status", f"/containers/{c.id}/kill/")
    assert status == 403
    assert stack.engine.client().api.inspect_container(c.id)["State"]["Status"] == "running"
