"""Ownership as the engine label dockweb.team=<slug>, mirrored onto the models; engine time parsing."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from dockweb.accounts.models import TEAM_LABEL, Team


class TeamCache:
    """Resolve team slugs to teams once per sync pass (reconcile touches many objects)."""

    def __init__(self) -> None:
        self._by_slug: dict[str, Team | None] = {}

    def get(self, slug: str) -> Team | None:
        if slug not in self._by_slug:
            self._by_slug[slug] = Team.objects.filter(slug=slug).first()
        return self._by_slug[slug]


def team_id_for(labels: dict | None, current_team_id: int | None, teams: TeamCache) -> int | None:
    """Return the owning team id: the label's team when it names one, else the ownership the dashboard gave.

    Docker cannot relabel an existing container, so an object given to a team from the dashboard keeps its
    owner only in the database; an object whose label names a team always follows the label.
    """
    slug = (labels or {}).get(TEAM_LABEL)
    if slug:
        team = teams.get(slug)
        return team.pk if team else None
    return current_team_id


def parse_engine_time(value) -> datetime | None:
    """Parse an engine timestamp (RFC 3339 text or Unix seconds); the zero time means never."""
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    if value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
