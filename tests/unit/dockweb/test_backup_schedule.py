"""Presets and cron expressions become django-celery-beat crontabs in the team's timezone; next runs and intervals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from dockweb.backups import schedule


def test_presets_are_cron_fields():
    assert schedule.cron_fields("daily") == {"minute": "0", "hour": "3", "day_of_month": "*",
                                             "month_of_year": "*", "day_of_week": "*"}
    assert schedule.cron_fields("weekly")["day_of_week"] == "0"
    assert schedule.cron_fields("custom", "*/15 2-4 * * 1-5")["minute"] == "*/15"


@pytest.mark.parametrize("expr, message", [("* * *", "five fields"), ("61 * * * *", "61"),
                                          ("0 25 * * *", "25")])
def test_a_bad_cron_expression_is_refused_with_the_reason(expr, message):
    with pytest.raises(ValidationError) as e:
        schedule.cron_fields("custom", expr)
    assert message in str(e.value.message_dict["cron"])


def test_an_unknown_timezone_is_refused():
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        schedule.zone("Mars/Olympus")


def test_next_runs_are_wall_clock_times_in_the_team_timezone():
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2025, 3, 28, 12, 0, tzinfo=timezone.utc)
    runs = schedule.next_runs(schedule.cron_fields("daily"), berlin, after, 3)
    assert [r.astimezone(berlin).hour for r in runs] == [3, 3, 3]
    # 03:00 Berlin is 02:00 UTC in winter and 01:00 UTC after the switch to summer time on March 30
    assert [r.astimezone(timezone.utc).hour for r in runs] == [2, 1, 1]


def test_next_run_of_every_minute_is_the_next_minute():
    after = datetime(2025, 1, 1, 10, 0, 30, tzinfo=timezone.utc)
    run, = schedule.next_runs(schedule.cron_fields("custom", "* * * * *"), ZoneInfo("UTC"), after)
    assert run == datetime(2025, 1, 1, 10, 1, tzinfo=ZoneInfo("UTC"))


def test_intervals_of_presets():
    utc, after = ZoneInfo("UTC"), datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert schedule.interval(schedule.cron_fields("hourly"), utc, after) == timedelta(hours=1)
    assert schedule.interval(schedule.cron_fields("weekly"), utc, after) == timedelta(days=7)
    assert schedule.interval(schedule.cron_fields("monthly"), utc, after) == timedelta(days=31)


def test_saving_a_policy_writes_its_periodic_task_with_the_team_timezone(make_user):
    from django_celery_beat.models import PeriodicTask

    from dockweb.backups import services
    from dockweb.hosts.models import Host
    from dockweb.volumes.models import Volume

    olga = make_user("olga", teams={"red": "operator"})
    host = Host.objects.create(name="h1", engine_url="unix:///nonexistent.sock")
    red = olga.memberships.get().team
    red.timezone = "America/New_York"
    red.save()
    Volume.objects.create(host=host, name="pgdata", team=red)
    policy = services.save_policy(olga, {"name": "nightly", "team": "red", "host": "h1", "volume": "pgdata",
                                         "preset": "custom", "cron": "30 2 * * 1-5"})
    task = PeriodicTask.objects.get(name=policy.periodic_task_name)
    assert task.task == "dockweb.backups.tasks.run_policy" and json.loads(task.args) == [policy.pk]
    assert task.queue == "host.h1" and task.enabled
    c = task.crontab
    assert (c.minute, c.hour, c.day_of_week, str(c.timezone)) == ("30", "2", "1-5", "America/New_York")
    assert PeriodicTask.objects.filter(task="dockweb.backups.tasks.check_policies").exists()

    # The team moves: its schedules move with it. Disabling the policy disables its entry; deleting removes it.
    admin = make_user("root", superuser=True)
    services.update_team_settings(admin, "red", "Asia/Tokyo", "")
    assert str(PeriodicTask.objects.get(name=policy.periodic_task_name).crontab.timezone) == "Asia/Tokyo"
    services.save_policy(olga, {"name": "nightly", "volume": "pgdata", "preset": "daily", "enabled": False},
                         policy)
    task = PeriodicTask.objects.get(name=policy.periodic_task_name)
    assert not task.enabled and task.crontab.hour == "3"
    services.delete_policy(olga, policy.pk)
    assert not PeriodicTask.objects.filter(name=policy.periodic_task_name).exists()
