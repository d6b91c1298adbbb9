"""Which backups a GFS retention policy keeps: pure, over (id, time) pairs, unit-tested over simulated dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Callable, Hashable, Iterable


@dataclass(frozen=True)
class Retention:
    """Keep the newest `last`, plus the newest backup of each of the latest `daily` days, `weekly` ISO weeks and
    `monthly` months that have one (restic's and borg's rules). All zero keeps everything."""
    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @property
    def keeps_everything(self) -> bool:
        return not (self.last or self.daily or self.weekly or self.monthly)


def _buckets(tz: tzinfo) -> list[tuple[str, Callable[[datetime], tuple]]]:
    return [
        ("daily", lambda t: t.astimezone(tz).date().timetuple()[:3]),
        ("weekly", lambda t: tuple(t.astimezone(tz).isocalendar())[:2]),
        ("monthly", lambda t: (t.astimezone(tz).year, t.astimezone(tz).month)),
    ]


def kept(backups: Iterable[tuple[Hashable, datetime]], policy: Retention, tz: tzinfo) -> dict[Hashable, list[str]]:
    """Return {id: [reasons]} for the backups policy keeps; every other id may be deleted.

    Days, weeks and months are the team's (tz): a backup at 23:30 in Berlin belongs to that Berlin day.
    The newest backup is always kept, whatever the numbers say: retention never leaves a volume with none.
    """
    items = sorted(backups, key=lambda b: b[1], reverse=True)
    if not items:
        return {}
    if policy.keeps_everything:
        return {bid: ["all"] for bid, _ in items}
    reasons: dict[Hashable, list[str]] = {}
    for bid, _ in items[:policy.last]:
        reasons.setdefault(bid, []).append("last")
    for name, bucket_of in _buckets(tz):
        limit = getattr(policy, name)
        seen: set = set()
        for bid, when in items:
            if len(seen) >= limit:
                break
            bucket = bucket_of(when)
            if bucket not in seen:
                seen.add(bucket)
                reasons.setdefault(bid, []).append(name)
    reasons.setdefault(items[0][0], ["newest"])
    return reasons


def to_delete(backups: Iterable[tuple[Hashable, datetime]], policy: Retention, tz: tzinfo) -> list[Hashable]:
    """Return the ids policy lets go, oldest first."""
    items = sorted(backups, key=lambda b: b[1])
    keep = kept(items, policy, tz)
    return [bid for bid, _ in items if bid not in keep]
