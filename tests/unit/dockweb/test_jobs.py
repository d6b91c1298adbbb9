"""Jobs: the one wrapper marks running then succeeded or failed; tasks re-check the role; queues per host."""

from __future__ import annotations

import pytest
from django.test import TestCase

from dockweb.containers import services as containers
from dockweb.core.errors import EngineConflict
from dockweb.core.jobs import create_job, run_job
from dockweb.core.models import AuditEntry, Job
from dockweb.hosts.models import Host
from dockweb.images import services as images


@pytest.fixture
def job(make_user):
    user = make_user("olga", teams={"red": "operator"})
    return create_job(user, "test.kind", host=Host.default(), target="something")


def test_a_job_that_returns_succeeds_with_its_message(job):
    seen = []

    def work(j):
        seen.append(Job.objects.get(pk=j.pk).state)
        j.set_progress(0.5, "half way")
        j.append_log("step one")
        return "all done"

    run_job(job.pk, work)
    job.refresh_from_db()
    assert seen == ["running"]
    assert (job.state, job.progress, job.message, job.log) == ("succeeded", 1.0, "all done", "step one\n")
    assert job.started is not None and job.finished >= job.started
    assert AuditEntry.objects.get(action="test.kind").result == "ok"


def test_an_engine_error_fails_the_job_with_the_engines_message(job):
    def work(j):
        raise EngineConflict("You cannot remove a running container abc. Stop the container first")

    run_job(job.pk, work)
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error == "You cannot remove a running container abc. Stop the container first"
    assert AuditEntry.objects.get(action="test.kind").result == "failed"


def test_an_unexpected_error_fails_the_job_and_reaches_the_worker(job):
    def work(j):
        raise KeyError("surprise")

    with pytest.raises(KeyError):
        run_job(job.pk, work)
    job.refresh_from_db()
    assert job.state == "failed" and "KeyError" in job.error


def test_a_finished_job_is_not_run_again(job):
    run_job(job.pk, lambda j: "once")
    calls = []
    run_job(job.pk, lambda j: calls.append(1))
    assert calls == []


def test_the_job_log_keeps_its_tail(job):
    from dockweb.core.models import LOG_LIMIT

    job.append_log("x" * LOG_LIMIT)
    job.append_log("last line")
    assert len(job.log) == LOG_LIMIT and job.log.endswith("last line\n")


def test_a_pull_fails_with_the_engines_message(make_user, fake_engine, monkeypatch):
    from dockweb.images import tasks

    sent = []
    monkeypatch.setattr(tasks.pull_image, "apply_async", lambda args, queue: sent.append((args, queue)) or _Result())
    user = make_user("olga", teams={"red": "operator"})
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = images.pull_image(user, "nosuch/image:1", "red")
    assert sent == [([job.pk], "host.local")]
    run_job(job.pk, images.run_pull)
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error.startswith("pull access denied for nosuch/image:1")


def test_the_task_entry_checks_the_role_again(make_user, fake_engine, monkeypatch):
    """A user demoted between queueing and running must not have the job done for them."""
    from dockweb.accounts.models import Membership
    from dockweb.containers import tasks

    monkeypatch.setattr(tasks.bulk_action, "apply_async", lambda args, queue: _Result())
    user = make_user("olga", teams={"red": "operator"})
    cid = fake_engine.add_container("web", {"dockweb.team": "red"})
    containers.reconcile(Host.default())
    job = containers.bulk_action(user, "stop", ["web"])
    Membership.objects.filter(user=user).update(role="viewer")
    user.__dict__.pop("_dockweb_team_roles", None)
    run_job(job.pk, containers.run_bulk_action)
    job.refresh_from_db()
    assert job.state == "failed"
    assert "operator or admin role" in job.error
    assert ("stop", cid) not in fake_engine.calls


def test_a_bulk_job_acts_on_each_container_and_reports_progress(make_user, fake_engine, monkeypatch):
    from dockweb.containers import tasks

    monkeypatch.setattr(tasks.bulk_action, "apply_async", lambda args, queue: _Result())
    user = make_user("olga", teams={"red": "operator"})
    ids = [fake_engine.add_container(n, {"dockweb.team": "red"}) for n in ("a", "b", "c")]
    containers.reconcile(Host.default())
    job = containers.bulk_action(user, "stop", ["a", "b", "c"])
    run_job(job.pk, containers.run_bulk_action)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.progress == 1.0
    assert [c for c in fake_engine.calls if c[0] == "stop"] == [("stop", i) for i in ids]
    assert job.log.count(": ok") == 3


def test_bulk_refuses_another_teams_container_up_front(make_user, fake_engine):
    from django.http import Http404

    user = make_user("olga", teams={"red": "operator"})
    make_user("bob", teams={"blue": "admin"})
    fake_engine.add_container("theirs", {"dockweb.team": "blue"})
    containers.reconcile(Host.default())
    with pytest.raises(Http404):
        containers.bulk_action(user, "stop", ["theirs"])
    assert not Job.objects.exists()


def test_progress_goes_out_to_the_jobs_channel_group(job):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from dockweb.core.events import job_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(job_group(job.pk), channel)
    job.set_progress(0.25, "a quarter")
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "job.update"
    assert (message["job"]["id"], message["job"]["progress"], message["job"]["message"]) == (job.pk, 0.25,
                                                                                             "a quarter")


class _Result:
    id = "fake-task-id"
