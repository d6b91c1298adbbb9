"""Backup schedules: presets and cron expressions, as django-celery-beat crontabs in the team's timezone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import ParseException, crontab
from django.core.exceptions import ValidationError

PRESETS = {
    "hourly": "0 * * * *",
    "daily": "0 3 * * *",
    "weekly": "0 3 * * 0",
    "monthly": "0 3 1 * *",
}
RUN_TASK = "dockweb.backups.tasks.run_policy"
CHECK_TASK = "dockweb.backups.tasks.check_policies"
CHECK_TASK_NAME = "dockweb: check backup policies are succeeding"
CHECK_MINUTES = 5


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())     # reads the tz database: once per process


def zone(name: str) -> ZoneInfo:
    """Return the IANA timezone name as a ZoneInfo; a ValidationError naming it when it is unknown."""
    try:
        if name in _zone_names():
            return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        pass
    raise ValidationError({"timezone": [f"{name!r} is not a timezone: use an IANA name such as Europe/Berlin"]})


def cron_fields(preset: str, cron: str = "") -> dict:
    """Turn a preset or a five-field cron expression into CrontabSchedule fields; ValidationError when bad."""
    expr = PRESETS.get(preset) if preset != "custom" else cron.strip()
    if expr is None:
        raise ValidationError({"preset": [f"unknown schedule {preset!r}: use {', '.join(PRESETS)} or custom"]})
    parts = expr.split()
    if len(parts) != 5:
        raise ValidationError({"cron": [f"{expr!r}: a cron expression has five fields: "
                                        "minute hour day-of-month month day-of-week"]})
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts))
    try:
        crontab(**fields)
    except (ParseException, ValueError) as e:
        raise ValidationError({"cron": [f"{expr!r}: {e}"]}) from None
    return fields


def cron_of(fields: dict) -> crontab:
    return crontab(**fields)


def _matches_day(c: crontab, day: datetime) -> bool:
    # Celery's crontab (what beat runs) needs day of month AND day of week to match, unlike Vixie cron's OR.
    return (day.month in c.month_of_year and day.day in c.day_of_month
            and day.isoweekday() % 7 in c.day_of_week)


def next_runs(fields: dict, tz: ZoneInfo, after: datetime, count: int = 1) -> list[datetime]:
    """Return the next count fire times (aware, in tz) strictly after `after`, by walking wall-clock days."""
    c = cron_of(fields)
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
    out: list[datetime] = []
    day = local.replace(hour=0, minute=0)
    for _ in range(366 * 5):       # a cron that matches Feb 29 only fires within four years
        if _matches_day(c, day):
            for hour in sorted(c.hour):
                for minute in sorted(c.minute):
                    t = day.replace(hour=hour, minute=minute)
                    if t >= local:
                        out.append(t.replace(tzinfo=tz))
                        if len(out) == count:
                            return out
        day += timedelta(days=1)
    return out


def interval(fields: dict, tz: ZoneInfo, after: datetime) -> timedelta:
    """Return the gap between the next two runs (for "no success within twice its interval")."""
    runs = next_runs(fields, tz, after, 2)
    return runs[1] - runs[0] if len(runs) == 2 else timedelta(days=366)


def crontab_schedule(fields: dict, tz_name: str):
    """Return the shared CrontabSchedule row for these fields in the timezone (created when missing)."""
    from django_celery_beat.models import CrontabSchedule

    zone(tz_name)
    schedule, _ = CrontabSchedule.objects.get_or_create(timezone=tz_name, **fields)
    return schedule


def sync_periodic_task(policy) -> None:
    """Create, update or disable the beat entry that runs policy, on its host's queue, in its team's timezone."""
    from django_celery_beat.models import PeriodicTask

    fields = cron_fields(policy.preset, policy.cron)
    PeriodicTask.objects.update_or_create(name=policy.periodic_task_name, defaults={
        "task": RUN_TASK, "crontab": crontab_schedule(fields, policy.team.timezone), "interval": None,
        "args": json.dumps([policy.pk]), "queue": policy.host.queue, "enabled": policy.enabled,
        "description": f"backup policy {policy.name} of team {policy.team.slug}"})
    ensure_check_task()


def delete_periodic_task(policy) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=policy.periodic_task_name).delete()


def ensure_check_task() -> None:
    """Make sure beat runs the overdue check every CHECK_MINUTES minutes (idempotent)."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=CHECK_MINUTES, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.get_or_create(name=CHECK_TASK_NAME, defaults={
        "task": CHECK_TASK, "interval": every, "args": "[]", "queue": settings.CELERY_TASK_DEFAULT_QUEUE})
