"""Screenshots of the main pages at desktop (1280x800) and phone (390x844) width, saved to docs/screenshots/ for the
README; at phone width no page may scroll sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS, log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]


def seed(stack) -> dict:
    """Containers of two teams and one made outside dockweb, volumes, and a log worth reading."""
    client = stack.engine.client()
    web = client.containers.run(
        "busybox", ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); "
                                "echo \"GET /health 200 ${i}ms\"; sleep 1; done"],
        name="web", detach=True, labels={"dockweb.team": "red", "tier": "web"}, ports={"80/tcp": 8080},
        environment={"LISTEN": ":80", "DB_PASSWORD": "hunter2"}, mem_limit="128m", pids_limit=100,
        restart_policy={"Name": "unless-stopped"})
    client.containers.run("busybox", ["sleep", "3600"], name="worker", detach=True,
                          labels={"dockweb.team": "red", "tier": "queue"})
    client.containers.create("busybox", ["true"], name="migrate", labels={"dockweb.team": "blue"})
    client.containers.create("busybox", ["sleep", "10"], name="made-with-cli")
    client.volumes.create("red-data", labels={"dockweb.team": "red"})
    client.volumes.create("scratch")
    for name in ("web", "worker", "migrate", "made-with-cli"):
        assert wait_listed(stack, name), stack.log_tail("events")
    return {"web": web.id}


def settle(page) -> None:
    """Wait until htmx has loaded the fragments a page asks for (disk usage, events)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("document.querySelectorAll('[aria-busy=true]').length === 0")


def test_screenshots_of_the_main_pages_at_desktop_and_phone_width(stack, page):
    ids = seed(stack)
    log_in(page, "admin")
    # A job worth showing: a pull the engine refuses (no registry here), with the engine's message.
    page.goto("/images/")
    page.get_by_text("Pull an image").click()
    page.get_by_label("Image", exact=True).fill("dockweb-demo/app:1.4")
    page.get_by_label("For team").select_option("red")
    page.get_by_role("button", name="Pull", exact=True).click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job_url = page.url
    page.locator("#job-state", has_text="failed").wait_for()
    # Some audit entries beyond the pull: a refused action and a restart.
    page.goto(f"/containers/{ids['web']}/")
    page.get_by_role("button", name="Restart").click()
    page.locator("#container-state", has_text="running").wait_for()

    pages = [("overview", "/"), ("containers", "/containers/"), ("container", f"/containers/{ids['web']}/"),
             ("run", "/containers/run/"), ("images", "/images/"), ("volumes", "/volumes/"),
             ("job", job_url), ("audit", "/audit/"), ("team", "/accounts/teams/red/")]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for width_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        for name, url in pages:
            page.goto(url)
            if name == "run":  # show the field errors, the form's most telling state
                page.get_by_label("Image").fill("busybox")
                page.get_by_label("Memory limit").fill("2k")
                page.get_by_label("Ports").fill("80:eighty")
                page.get_by_role("button", name="Run").click()
                page.locator("#form-errors").wait_for()
            settle(page)
            if width_name == "phone":
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{url} scrolls sideways by {overflow}px at phone width"
            path = SCREENSHOTS / f"{name}-{width_name}.png"
            page.screenshot(path=str(path))
            saved.append(path)
    # Dark mode as the system asks for it (prefers-color-scheme), no toggle used.
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme="dark")
    for name, url in (("overview", "/"), ("container", f"/containers/{ids['web']}/")):
        page.goto(url)
        settle(page)
        path = SCREENSHOTS / f"{name}-dark.png"
        page.screenshot(path=str(path))
        saved.append(path)
    assert all(p.stat().st_size > 10_000 for p in saved)
