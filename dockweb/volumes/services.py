"""Volume verbs: list, inspect, create (labelled with the team), remove, prune; and syncing volume rows."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from dockweb.accounts.models import TEAM_LABEL
from dockweb.accounts.permissions import get_for_user, team_for_user
from dockweb.core.sync import Drift, list_visible, reconcile_rows, upsert
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError, EngineNotFound
from dockweb.core.ownership import TeamCache, parse_engine_time
from dockweb.hosts.models import Host
from dockweb.volumes.models import Volume

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def list_volumes(user, *, host: Host | None = None, search: str = "", team: str = "") -> QuerySet:
    return list_visible(Volume, user, host=host, search=search, team=team)


def get_volume(user, ref: str, action: str = "view", host: Host | None = None) -> Volume:
    return get_for_user(Volume, user, ref, action, host=host)


def inspect_volume(user, ref: str, host: Host | None = None) -> dict:
    vol = get_volume(user, ref, "view", host)
    with client.calling(vol.host, f"inspecting volume {vol.name}"):
        return client.engine_client(vol.host).api.inspect_volume(vol.name)


def list_files(user, ref: str, path: str = "/", host: Host | None = None) -> dict:
    """List a directory inside the volume (read-only; links are shown, never followed)."""
    vol = get_volume(user, ref, "view", host)
    with client.calling(vol.host, f"listing {path} in volume {vol.name}"):
        return client.extension(vol.host, "GET", f"/volumes/{vol.name}/files", params={"path": path or "/"})


def open_file(user, ref: str, path: str, limit: int | None = None, host: Host | None = None):
    """Open a file of the volume for reading; return (response, size). The caller closes the response."""
    vol = get_volume(user, ref, "view", host)
    params = {"path": path, **({"limit": limit} if limit is not None else {})}
    with client.calling(vol.host, f"reading {path} in volume {vol.name}"):
        response = client.extension(vol.host, "GET", f"/volumes/{vol.name}/files/content", params=params, stream=True)
    return response, int(response.headers.get("X-Dockweb-File-Size") or 0)


def create_volume(user, name: str, team_slug: str = "", host_name: str = "", labels: dict | None = None,
                  driver: str = "local") -> Volume:
    """Create a named volume for a team (its operators), labelled dockweb.team=<slug>."""
    if name and not NAME_RE.match(name):
        raise ValidationError({"name": [f"{name!r}: a volume name is 2+ of letters, digits, _ . - "
                                        "and starts with a letter or digit"]})
    labels = dict(labels or {})
    if any(k.startswith("dockweb.") for k in labels):
        raise ValidationError({"labels": ["labels starting with dockweb. are set by dockweb itself"]})
    team = team_for_user(user, team_slug, "operate")
    host = get_for_user(Host, user, host_name, "view") if host_name else Host.default()
    if team:
        labels[TEAM_LABEL] = team.slug
    try:
        with client.calling(host, f"creating volume {name}"):
            doc = client.engine_client(host).api.create_volume(name=name or None, driver=driver, labels=labels)
    except EngineError as e:
        record("volume.create", actor=user, object_type="volume", object_name=name, host_name=host.name,
               team_slug=team.slug if team else "", result="failed", message=e.message)
        raise
    vol = _upsert(host, doc, TeamCache())
    record("volume.create", actor=user, obj=vol)
    return vol


def remove_volume(user, ref: str, force: bool = False, host: Host | None = None) -> None:
    vol = get_for_user(Volume, user, ref, "operate", host=host, audit="volume.remove")
    try:
        with client.calling(vol.host, f"removing volume {vol.name}"):
            client.engine_client(vol.host).api.remove_volume(vol.name, force=force)
    except EngineNotFound:
        pass
    except EngineError as e:
        record("volume.remove", actor=user, obj=vol, result="failed", message=e.message)
        raise
    record("volume.remove", actor=user, obj=vol)
    Volume.objects.filter(pk=vol.pk).delete()


def prune_volumes(user, team_slug: str = "", host: Host | None = None, named: bool = False) -> dict:
    """Remove unused volumes: a team's (its admins, by label) or all unused ones (site admins, no team).

    As `docker volume prune`, only anonymous volumes go unless named is true (`-a`).
    """
    team = team_for_user(user, team_slug, "admin")
    host = host or Host.default()
    filters: dict = {"label": [f"{TEAM_LABEL}={team.slug}"]} if team else {}
    if named:
        filters["all"] = ["true"]
    try:
        with client.calling(host, "pruning volumes"):
            result = client.engine_client(host).api.prune_volumes(filters=filters or None)
    except EngineError as e:
        record("volume.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
               result="failed", message=e.message)
        raise
    deleted = result.get("VolumesDeleted") or []
    Volume.objects.filter(host=host, name__in=deleted).delete()
    record("volume.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
           message=f"{len(deleted)} removed")
    return result


def fields_from_engine(doc: dict) -> dict:
    return {"driver": doc.get("Driver") or "local", "mountpoint": doc.get("Mountpoint") or "",
            "labels": doc.get("Labels") or {}, "created": parse_engine_time(doc.get("CreatedAt"))}


def _upsert(host: Host, doc: dict, teams: TeamCache) -> Volume:
    return upsert(Volume, host, {"name": doc["Name"]}, fields_from_engine(doc), teams)


def sync_volume(host: Host, name: str) -> Volume | None:
    """Re-read one volume from the engine into its row; delete the row when the engine no longer has it."""
    try:
        with client.calling(host, f"inspecting volume {name}"):
            doc = client.engine_client(host).api.inspect_volume(name)
    except EngineNotFound:
        Volume.objects.filter(host=host, name=name).delete()
        return None
    return _upsert(host, doc, TeamCache())


def reconcile(host: Host) -> Drift | None:
    """Make the host's volume rows match the engine's list; None when the engine has no volumes API."""
    started = timezone.now()
    try:
        with client.calling(host, "listing volumes"):
            docs = client.engine_client(host).api.volumes().get("Volumes") or []
    except EngineNotFound:
        # Every Docker API has /volumes: a 404 means this engine does not serve it yet. Keep the rows.
        return None
    return reconcile_rows(Volume, host, docs, "name", "Name", fields_from_engine, started)
