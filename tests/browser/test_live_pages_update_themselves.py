"""In a real browser, pages follow the engine's events without a reload: a container started with the docker API
appears in the open list, a container stopped behind the page's back shows as exited on its page; and a job's
page moves its progress bar and grows its log while the job runs.

This module's stack uses a private Redis channel layer: the events listener is a process of its own, and the job
updates are published from this test process.
"""

from __future__ import annotations

import threading

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]

CHANNEL_LAYER = "redis"


def in_thread(fn):
    """Run fn in a thread of its own: Playwright's sync API keeps an event loop current in this one, and
    async_to_sync (under publish()) refuses to run beside it."""
    errors = []

    def run():
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(e)
        finally:
            from django.db import connection
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if errors:
        raise errors[0]


@pytest.fixture
def redis_layer(stack):
    """Point this process's channel layer at the stack's Redis, as the workers' is."""
    from channels.layers import channel_layers
    from django.test import override_settings

    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": [stack.redis_url]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        try:
            yield
        finally:
            channel_layers.backends.clear()


def test_a_container_started_elsewhere_appears_in_the_open_list(stack, page):
    log_in(page, "olga")
    page.goto("/containers/")
    page.evaluate("window.__not_reloaded = true")
    assert page.get_by_role("link", name="appears-live").count() == 0
    # The events socket is open before the container starts.
    page.wait_for_function("window.dockwebLiveEvents && window.dockwebLiveEvents.every((s) => s.ws.readyState === 1)")
    stack.engine.client().containers.run("busybox", ["sleep", "3600"], name="appears-live", detach=True,
                                         labels={"dockweb.team": "red"})
    page.get_by_role("link", name="appears-live").wait_for(timeout=10000)
    assert page.evaluate("window.__not_reloaded") is True


def test_a_container_stopped_elsewhere_shows_as_exited_on_its_page(stack, page):
    c = stack.engine.client().containers.run("busybox", ["sleep", "3600"], name="stops-live", detach=True,
                                             labels={"dockweb.team": "red"})
    assert wait_listed(stack, "stops-live"), stack.log_tail("events")
    log_in(page, "vera")
    page.goto(f"/containers/{c.id}/")
    assert page.locator("#container-state").inner_text() == "running"
    page.evaluate("window.__not_reloaded = true")
    page.wait_for_function("window.dockwebLiveEvents && window.dockwebLiveEvents.every((s) => s.ws.readyState === 1)")
    c.kill()
    page.locator("#container-state", has_text="exited").wait_for(timeout=10000)
    assert page.evaluate("window.__not_reloaded") is True


def test_a_running_jobs_page_moves_its_progress_and_grows_its_log(stack, page, redis_layer):
    from dockweb.accounts.models import Team
    from dockweb.core import jobs
    from dockweb.core.models import Job
    from dockweb.hosts.models import Host

    job = jobs.create_job(stack.users["olga"], "image.build", host=Host.objects.get(name="local"),
                          team=Team.objects.get(slug="red"), target="demo/app:1")
    job.mark_running()
    log_in(page, "admin")
    page.goto(f"/jobs/{job.pk}/")
    page.evaluate("window.__not_reloaded = true")
    page.locator(".job-log-waiting").wait_for()
    page.wait_for_function("window.dockwebLiveJob && window.dockwebLiveJob.readyState === 1")

    in_thread(lambda: (jobs.append_log(job.pk, "Step 1/3 : FROM busybox"),
                       Job.objects.get(pk=job.pk).set_progress(1 / 3, "step 1 of 3")))
    page.locator("pre.job-log", has_text="Step 1/3").wait_for(timeout=5000)
    page.wait_for_function("document.querySelector('#job progress').value > 0.3")
    page.locator(".job-message", has_text="step 1 of 3").wait_for()

    in_thread(lambda: (jobs.append_log(job.pk, "Step 2/3 : RUN make"),
                       Job.objects.get(pk=job.pk).set_progress(2 / 3, "step 2 of 3")))
    page.locator("pre.job-log", has_text="Step 2/3").wait_for(timeout=5000)
    assert page.locator("pre.job-log").inner_text() == "Step 1/3 : FROM busybox\nStep 2/3 : RUN make\n"
    page.locator(".job-percent", has_text="67 %").wait_for(timeout=5000)  # the progress comes after the log line

    in_thread(lambda: Job.objects.get(pk=job.pk).mark_succeeded("built demo/app:1"))
    page.locator("#job-state", has_text="succeeded").wait_for(timeout=5000)
    page.locator("#job[data-done='1']").wait_for()  # the final fragment, fetched once
    assert "Ran for" in page.locator("#job").inner_text()
    assert page.evaluate("window.__not_reloaded") is True


def test_the_logs_tab_follows_a_container_again_after_it_restarts(stack, page):
    c = stack.engine.client().containers.run(
        "busybox", ["sh", "-c", "trap 'exit 0' TERM; echo started-$(date +%s%N); while true; do sleep 1; done"],
        name="restarts-live", detach=True, labels={"dockweb.team": "red"})
    assert wait_listed(stack, "restarts-live"), stack.log_tail("events")
    log_in(page, "vera")
    page.goto(f"/containers/{c.id}/#logs")
    page.locator("#live-logs .log-row", has_text="started-").wait_for()
    page.wait_for_function("window.dockwebLiveEvents && window.dockwebLiveEvents.every((s) => s.ws.readyState === 1)")
    c.stop(timeout=5)
    page.locator(".log-status", has_text="container stopped").wait_for(timeout=10000)
    c.start()
    page.locator("#live-logs .log-row", has_text="started-").nth(1).wait_for(timeout=10000)
    page.locator(".log-status", has_text="Following").wait_for()
