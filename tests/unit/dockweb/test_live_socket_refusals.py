"""Live sockets refuse before any data: wrong origin, anonymous, another team's object, a viewer's exec;
and an open socket closes within seconds of its user's logout or removal from the team."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from tests.unit.dockweb.live_support import close_code, keep_test_transaction, open_socket, session_cookie  # noqa: F401


@pytest.fixture
def world(make_user):
    from dockweb.accounts.models import Team
    from dockweb.containers.models import Container
    from dockweb.hosts.models import Host

    host = Host.default()
    users = {"olga": make_user("olga", teams={"red": "operator"}), "vera": make_user("vera", teams={"red": "viewer"}),
             "bob": make_user("bob", teams={"blue": "admin"})}
    red = Container.objects.create(host=host, engine_id="a" * 64, name="red-web", team=Team.objects.get(slug="red"))
    return host, users, red


def logs_path(host, c) -> str:
    return f"/ws/hosts/{host.pk}/containers/{c.engine_id}/logs/"


def test_a_socket_from_another_origin_is_refused(world):
    host, users, red = world
    _, key = session_cookie(users["olga"])

    async def scenario():
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/events/", key, origin="http://evil.example")
        assert not connected
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/events/", key, origin=None)
        assert not connected

    async_to_sync(scenario)()


def test_an_anonymous_socket_is_closed_with_4401_before_any_data(world):
    host, _, red = world

    async def scenario():
        for path in (logs_path(host, red), f"/ws/hosts/{host.pk}/events/", "/ws/jobs/1/"):
            comm, connected = await open_socket(path)
            assert connected
            assert await comm.receive_output(2) == {"type": "websocket.close", "code": 4401}

    async_to_sync(scenario)()


def test_another_teams_container_answers_4404_like_a_missing_one(world):
    host, users, red = world
    _, key = session_cookie(users["bob"])

    async def scenario():
        for path in (logs_path(host, red), f"/ws/hosts/{host.pk}/containers/{red.engine_id}/exec/",
                     f"/ws/hosts/{host.pk}/containers/{red.engine_id}/stats/",
                     f"/ws/hosts/{host.pk}/containers/{'f' * 64}/logs/"):
            comm, connected = await open_socket(path, key)
            assert await comm.receive_output(2) == {"type": "websocket.close", "code": 4404}, path

    async_to_sync(scenario)()


def test_a_viewer_may_not_exec_or_attach(world):
    host, users, red = world
    _, key = session_cookie(users["vera"])

    async def scenario():
        for verb in ("exec", "attach"):
            comm, connected = await open_socket(f"/ws/hosts/{host.pk}/containers/{red.engine_id}/{verb}/", key)
            assert await comm.receive_output(2) == {"type": "websocket.close", "code": 4403}

    async_to_sync(scenario)()


def test_another_users_job_answers_4404(world):
    from dockweb.core.jobs import create_job

    host, users, red = world
    job = create_job(users["olga"], "image.pull", host=host, target="busybox")
    _, key = session_cookie(users["bob"])

    async def scenario():
        comm, _ = await open_socket(f"/ws/jobs/{job.pk}/", key)
        assert await comm.receive_output(2) == {"type": "websocket.close", "code": 4404}

    async_to_sync(scenario)()


def test_logging_out_closes_open_sockets_within_seconds(world):
    host, users, red = world
    client, key = session_cookie(users["vera"])

    async def scenario():
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/events/", key)
        assert connected
        assert await comm.receive_nothing(0.2)  # accepted and open
        start = time.monotonic()
        await database_sync_to_async(client.logout)()
        assert await close_code(comm, 3) == 4401
        return time.monotonic() - start

    took = async_to_sync(scenario)()
    assert took < 3.0


def test_removal_from_the_team_closes_the_socket(world):
    from dockweb.accounts.models import Membership

    host, users, red = world
    _, key = session_cookie(users["vera"])

    async def scenario():
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/containers/{red.engine_id}/stats/", key)
        # The stats stream fails against the absent engine; the socket itself stays open.
        await database_sync_to_async(Membership.objects.filter(user=users["vera"]).delete)()
        assert await close_code(comm, 3) == 4404

    async_to_sync(scenario)()


def test_a_deleted_session_is_noticed_by_the_periodic_check(world, monkeypatch):
    from django.contrib.sessions.models import Session

    from dockweb.live import consumers

    monkeypatch.setattr(consumers, "RECHECK", 0.2)
    host, users, red = world
    _, key = session_cookie(users["vera"])

    async def scenario():
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/events/", key)
        assert await comm.receive_nothing(0.1)
        # Deleted behind the signals' back (as an expired session sweep would): only the backstop sees it.
        await database_sync_to_async(Session.objects.filter(session_key=key).delete)()
        assert await close_code(comm, 2) == 4401

    async_to_sync(scenario)()
