"""Fixtures of the browser tests: the real stack pieces (an engine daemon, Daphne serving dockweb on a free loopback
port, the events listener) on a throwaway database, and Debian's chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (`./dockweb.sh test` installs the package).
Tests that lack chromium, Playwright or root are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.daemon_harness import EngineDaemon
from tests.integration.polling import wait_for
from tests.unit.dockweb.support import (REPO, flush_database, free_port, redis_server, setup_django, stop_process,
                                        wait_for_port)

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches the network or writes outside the fresh profile.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORDS = {"admin": "admin-pw-7Hq2", "olga": "olga-pw-3Kd9", "vera": "vera-pw-8Lm4"}


def missing_browser() -> str | None:
    """Return why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (it is pinned in requirements.txt)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (./dockweb.sh test installs Debian's chromium package)"
    if os.geteuid() != 0:
        return "the engine daemon needs root"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = None
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            reason = reason or missing_browser()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Stack:
    url: str
    engine: EngineDaemon
    users: dict = field(default_factory=dict)
    logs: dict = field(default_factory=dict)
    redis_url: str = ""  # set when the module asked for the Redis channel layer

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _make_users() -> dict:
    """A site admin, an operator and a viewer of team red, with passwords the server's default hasher checks.

    The test process hashes with MD5 for speed (support.setup_django); Daphne runs the production hashers.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from dockweb.accounts.models import Membership, Team

    hasher = PBKDF2PasswordHasher()
    User = get_user_model()
    red, _ = Team.objects.get_or_create(slug="red", defaults={"name": "Red"})
    Team.objects.get_or_create(slug="blue", defaults={"name": "Blue"})
    users = {}
    for name, superuser, role in (("admin", True, None), ("olga", False, "operator"), ("vera", False, "viewer")):
        user = User(username=name, is_superuser=superuser, is_staff=superuser,
                    password=hasher.encode(PASSWORDS[name], hasher.salt()))
        user.save()
        if role:
            Membership.objects.create(user=user, team=red, role=role)
        users[name] = user
    return users


@pytest.fixture(scope="module")
def stack(request):
    """Engine daemon + Daphne + events listener on a fresh database; everything stopped and removed afterwards.

    The channel layer is in-memory (one Daphne process needs no more); a test module that sets
    CHANNEL_LAYER = "redis" gets a private redis-server, so the events listener's messages reach Daphne's sockets.
    Jobs run inside the request unless the module sets WORKER = True (with CHANNEL_LAYER = "redis"): then a real
    Celery worker runs them, so a page can watch a job while it runs.
    """
    setup_django()
    from django.core.management import call_command

    from dockweb.core import client as engine_clients
    from dockweb.hosts.models import Host

    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-browser-"))
    engine = EngineDaemon.create(cgroup_prefix="dockweb-test")
    procs: list[subprocess.Popen] = []
    files = []
    services = contextlib.ExitStack()
    try:
        layer = {"DOCKWEB_CHANNEL_LAYER": "memory"}
        if getattr(request.module, "CHANNEL_LAYER", "memory") == "redis":
            layer = {"DOCKWEB_CHANNEL_LAYER": "redis", "REDIS_URL": services.enter_context(redis_server())}
        engine.start()
        flush_database()
        Host.objects.create(name="local", engine_url=engine.base_url)
        users = _make_users()
        call_command("collectstatic", interactive=False, verbosity=0)
        port = free_port()
        worker = getattr(request.module, "WORKER", False)
        if worker and layer["DOCKWEB_CHANNEL_LAYER"] != "redis":
            raise RuntimeError("WORKER = True needs CHANNEL_LAYER = 'redis' (Redis is the worker's broker)")
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", DOCKWEB_ENGINE_URL=engine.base_url,
                   **layer,
                   # Without a worker, jobs (bulk actions, pulls) run inside the request, after their row commits.
                   DOCKWEB_CELERY_EAGER="0" if worker else "1")
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        logs = {"web": tmp / "web.log", "events": tmp / "events.log"}
        commands = {
            "web": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "dockweb.asgi:application"],
            "events": [sys.executable, "manage.py", "dockweb_events", "--rescan", "1"],
        }
        if worker:
            logs["worker"] = tmp / "worker.log"
            from django.conf import settings

            queues = f"{settings.CELERY_TASK_DEFAULT_QUEUE},{Host.objects.get(name='local').queue}"
            commands["worker"] = [sys.executable, "-m", "celery", "-A", "dockweb", "worker", "--pool", "solo",
                                  "--queues", queues, "--loglevel", "INFO"]
        for name, argv in commands.items():
            out = open(logs[name], "wb")
            files.append(out)
            procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        wait_for_port(port, procs[0], "daphne")
        yield Stack(url=f"http://127.0.0.1:{port}", engine=engine, users=users, logs=logs,
                    redis_url=layer.get("REDIS_URL", ""))
    finally:
        for proc in procs:
            stop_process(proc)
        for f in files:
            f.close()
        try:
            if engine.proc and engine.proc.poll() is None:
                for c in engine.client().containers.list(all=True):
                    c.remove(force=True)
        except Exception as e:  # noqa: BLE001 - cleanup goes on; the daemon's cleanup kills what is left
            warnings.warn(f"removing the browser tests' containers: {e}")
        engine_clients.close_clients()
        problems = engine.cleanup()
        if problems:
            warnings.warn(f"engine daemon cleanup in {engine.tmp} left: " + "; ".join(problems))
        flush_database()
        services.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(stack):
    """One headless chromium with a fresh profile directory for the module's tests."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="dockweb-test-chromium-")
    # Playwright's sync API runs an event loop in this thread; the tests also read the database from it.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright()
    playwright = manager.start()
    context = None
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=DESKTOP,
            base_url=stack.url, accept_downloads=True)
        context.set_default_timeout(15000)
        yield context
    finally:
        if context is not None:
            context.close()
        manager.__exit__(None, None, None)
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    """A fresh tab, logged out, that accepts confirm() dialogs (Remove asks first)."""
    browser.clear_cookies()
    tab = browser.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    try:
        yield tab
    finally:
        tab.close()


def log_in(page, username: str) -> None:
    """Log in through the form, with the keyboard: type, then Enter."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def wait_listed(stack: Stack, name: str, timeout: float = 10.0) -> bool:
    """Wait until the events listener has put the container named name into the database."""
    from dockweb.containers.models import Container

    return wait_for(lambda: Container.objects.filter(name=name).exists(), timeout=timeout, interval=0.1)
