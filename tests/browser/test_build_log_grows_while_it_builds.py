"""In a real browser: a Dockerfile typed into the build page builds on a real Celery worker, and the job page
shows the build's output step by step while the build is still running, then the image it made."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SCREENSHOTS, log_in

pytestmark = [pytest.mark.root, pytest.mark.slow]

CHANNEL_LAYER = "redis"
WORKER = True

DOCKERFILE = """FROM busybox
RUN echo first-step-done && sleep 3
RUN echo second-step-done && sleep 3
RUN echo third-step-done
CMD ["cat", "/etc/hostname"]
"""


def test_the_build_log_grows_on_the_job_page_while_the_build_runs(stack, page):
    log_in(page, "olga")
    page.goto("/images/")
    page.get_by_role("button", name="Build an image").click()
    page.get_by_label("Image name and tag").fill("red/slow:1")
    page.get_by_label("Dockerfile", exact=True).fill(DOCKERFILE)
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))

    log = page.locator(".job-log")
    # The first RUN's output is on the page while the last step has not run yet: the log streams.
    log.filter(has_text="first-step-done").wait_for(timeout=60000)
    assert "third-step-done" not in log.inner_text()
    assert page.locator("#job-state").inner_text() == "running"
    page.screenshot(path=str(SCREENSHOTS / "build-job-running-desktop.png"))

    page.locator("#job-state", has_text="succeeded").wait_for(timeout=60000)
    text = log.inner_text()
    assert text.index("first-step-done") < text.index("second-step-done") < text.index("third-step-done")
    assert "Successfully tagged red/slow:1" in text
    image = stack.engine.client().images.get("red/slow:1")
    assert image.labels.get("dockweb.team") == "red"
