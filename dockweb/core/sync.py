"""Rows that mirror engine objects: upsert one with its owning team, reconcile a host's rows with a listing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from django.db.models import Model
from django.utils import timezone

from dockweb.core.ownership import TeamCache, team_id_for


@dataclass
class Drift:
    added: int = 0
    updated: int = 0
    removed: int = 0


def list_visible(model: type[Model], user, *, host=None, search: str = "", team: str = ""):
    """The rows of model user may view, by name: on one host, whose name contains search, of a team ("none":
    unassigned)."""
    from dockweb.accounts.permissions import visible

    qs = visible(model, user).select_related("host", "team")
    if host is not None:
        qs = qs.filter(host=host)
    if search:
        qs = qs.filter(name__icontains=search)
    if team == "none":
        qs = qs.filter(team__isnull=True)
    elif team:
        qs = qs.filter(team__slug=team)
    return qs.order_by("name", "pk")


def upsert(model: type[Model], host, key: dict, fields: dict, teams: TeamCache):
    """Create or update the row of model keyed by host + key with fields; the team follows the label."""
    row = model.objects.filter(host=host, **key).first()
    fields = {**fields, "team_id": team_id_for(fields.get("labels"), row.team_id if row else None, teams)}
    obj, _ = model.objects.update_or_create(host=host, **key, defaults={**fields, "synced_at": timezone.now()})
    return obj


def reconcile_rows(model: type[Model], host, docs: list[dict], key_field: str, doc_key: str,
                   fields_from_engine: Callable[[dict], dict], started: datetime) -> Drift:
    """Make host's rows of model match docs (the engine's listing taken after started): add, update, delete."""
    rows = {getattr(r, key_field): r for r in model.objects.filter(host=host)}
    teams = TeamCache()
    drift = Drift()
    for doc in docs:
        row = rows.pop(doc[doc_key], None)
        fields = fields_from_engine(doc)
        if row is None:
            upsert(model, host, {key_field: doc[doc_key]}, fields, teams)
            drift.added += 1
            continue
        fields["team_id"] = team_id_for(fields.get("labels"), row.team_id, teams)
        if any(getattr(row, k) != v for k, v in fields.items()):
            model.objects.filter(pk=row.pk).update(**fields, synced_at=timezone.now())
            drift.updated += 1
    # Rows the engine did not list are gone, unless synced after the list was taken (created meanwhile).
    gone = [row.pk for row in rows.values() if row.synced_at < started]
    drift.removed = len(gone)
    model.objects.filter(pk__in=gone).delete()
    return drift
