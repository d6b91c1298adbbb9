"""GFS retention over simulated sequences of dates: exactly what the policy says is kept, in the team's timezone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dockweb.backups.retention import Retention, kept, to_delete

UTC = timezone.utc


def simulate(days: int, per_day: int, rules: Retention, tz=UTC, start=datetime(2025, 1, 1, 1, 0, tzinfo=UTC)):
    """Run a backup per_day times a day for days, pruning after each one as the service does; return survivors."""
    alive: list[tuple[int, datetime]] = []
    n = 0
    for d in range(days):
        for i in range(per_day):
            n += 1
            alive.append((n, start + timedelta(days=d, hours=i * 24 / per_day)))
            doomed = set(to_delete(alive, rules, tz))
            alive = [b for b in alive if b[0] not in doomed]
    return alive


def test_keep_last_only_keeps_the_newest_n():
    alive = simulate(10, 1, Retention(last=3))
    assert [b[0] for b in alive] == [8, 9, 10]


def test_daily_keeps_the_newest_backup_of_each_of_the_last_days():
    alive = simulate(10, 4, Retention(daily=5))
    # the newest of each of the last 5 days: backup 4 of day 6..10
    assert [b[0] for b in alive] == [24, 28, 32, 36, 40]
    assert all(b[1].hour == 19 for b in alive)


def test_a_year_of_daily_backups_keeps_exactly_last_daily_weekly_monthly():
    alive = simulate(365, 1, Retention(last=2, daily=7, weekly=4, monthly=6))
    dates = sorted(t.date() for _, t in alive)
    d = lambda m, day: datetime(2025, m, day).date()  # noqa: E731
    # daily: Dec 25..31 (keep_last's two are among them); weekly: the newest of ISO weeks 2026-W01 (Dec 31) and
    # W52 (Dec 28) are already kept, then W51 (Dec 21) and W50 (Dec 14); monthly: Dec 31, then Nov 30 .. Jul 31.
    expected = sorted({d(12, day) for day in range(25, 32)} | {d(12, 21), d(12, 14)}
                      | {d(11, 30), d(10, 31), d(9, 30), d(8, 31), d(7, 31)})
    assert dates == expected


def test_all_zero_keeps_everything():
    assert len(simulate(20, 2, Retention())) == 40


def test_the_newest_backup_is_always_kept():
    assert kept([(1, datetime(2025, 1, 1, tzinfo=UTC)), (2, datetime(2025, 1, 2, tzinfo=UTC))],
                Retention(monthly=0, weekly=0, daily=0, last=0), UTC) == {1: ["all"], 2: ["all"]}
    # keep_last=1 and two backups in a day with daily=1: only the newest survives
    assert to_delete([(1, datetime(2025, 1, 1, 1, tzinfo=UTC)), (2, datetime(2025, 1, 1, 2, tzinfo=UTC))],
                     Retention(last=1, daily=1), UTC) == [1]


def test_days_are_the_teams_days():
    berlin = ZoneInfo("Europe/Berlin")
    # 23:30 UTC on Jan 1 is 00:30 on Jan 2 in Berlin: in Berlin they are two different days, in UTC one.
    pair = [(1, datetime(2025, 1, 1, 22, 0, tzinfo=UTC)), (2, datetime(2025, 1, 1, 23, 30, tzinfo=UTC))]
    assert to_delete(pair, Retention(daily=2), UTC) == [1]
    assert to_delete(pair, Retention(daily=2), berlin) == []


def test_nothing_to_prune_in_an_empty_history():
    assert to_delete([], Retention(last=1), UTC) == []
