"""Container verbs: list, run, start/stop/restart/kill/remove, logs, inspect, bulk jobs; and syncing from the engine.

Each verb checks the user's role on the container itself, calls the host's engine through core.client,
re-reads the container from the engine into the model and writes the audit log.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from dockweb.accounts.models import TEAM_LABEL, Team
from dockweb.accounts.permissions import can, get_for_user, is_site_admin, team_for_user, visible
from dockweb.containers.models import Container
from dockweb.containers.runspec import RunSpec
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError, EngineNotFound
from dockweb.core.ownership import TeamCache, parse_engine_time, team_id_for
from dockweb.core.sync import Drift
from dockweb.hosts.models import Host

log = logging.getLogger("dockweb.containers")

ORDERINGS = {"name", "-name", "state", "-state", "created", "-created", "image", "-image", "team__name",
             "-team__name", "host__name", "-host__name"}
BULK_ACTIONS = ("start", "stop", "restart", "kill", "remove")
# Environment variables whose values the pages show masked.
SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE")


# --- reading -------------------------------------------------------------------------------------------------

def list_containers(user, *, host: Host | None = None, state: str = "", team: str = "", label: str = "",
                    image: str = "", search: str = "", order: str = "name") -> QuerySet:
    """Return the containers user may see, filtered (team "none" = unassigned; label "k" or "k=v") and sorted."""
    qs = visible(Container, user).select_related("host", "team")
    if host is not None:
        qs = qs.filter(host=host)
    if state:
        qs = qs.filter(state=state)
    if team == "none":
        qs = qs.filter(team__isnull=True)
    elif team:
        qs = qs.filter(team__slug=team)
    if label:
        key, sep, value = label.partition("=")
        qs = qs.filter(**{f"labels__{key}": value}) if sep else qs.filter(labels__has_key=key)
    if image:
        qs = qs.filter(Q(image=image) | Q(image__startswith=image + ":") | Q(image_id__startswith=image))
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(engine_id__startswith=search.lower())
                       | Q(image__icontains=search))
    return qs.order_by(order if order in ORDERINGS else "name", "pk")


def get_container(user, ref: str, action: str = "view", host: Host | None = None) -> Container:
    """Return the container ref names if user may do action on it (404 / 403 otherwise)."""
    return get_for_user(Container, user, ref, action, host=host)


def inspect_container(user, ref: str, host: Host | None = None) -> dict:
    """Return the engine's inspect document of the container."""
    c = get_container(user, ref, "view", host)
    with client.calling(c.host, f"inspecting container {c.name}"):
        return client.engine_client(c.host).api.inspect_container(c.engine_id)


def container_logs(user, ref: str, tail: int | None = 200, timestamps: bool = False,
                   host: Host | None = None) -> str:
    """Return the last tail lines (None: all) of the container's output (stdout and stderr, interleaved)."""
    c = get_container(user, ref, "logs", host)
    with client.calling(c.host, f"reading the logs of container {c.name}"):
        data = client.engine_client(c.host).api.logs(
            c.engine_id, stdout=True, stderr=True, timestamps=timestamps,
            tail="all" if tail is None else max(int(tail), 0))
    return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)


def masked_env(env: list[str] | None) -> list[tuple[str, str]]:
    """Return (name, value) pairs with values of secret-looking names replaced by ••••••."""
    out = []
    for item in env or []:
        name, _, value = item.partition("=")
        if any(word in name.upper() for word in SECRET_WORDS):
            value = "••••••"
        out.append((name, value))
    return out


# --- acting --------------------------------------------------------------------------------------------------

def run_container(user, spec: RunSpec) -> Container:
    """Create and start a container for spec.team (operator or admin), labelled with the team; return its row."""
    team = team_for_user(user, spec.team, "operate")
    host = _host_for(user, spec.host)
    _check_mounts(user, spec, team, host)
    labels = dict(spec.labels)
    if team is not None:
        labels[TEAM_LABEL] = team.slug
    audit_name = spec.name or spec.image
    api = client.engine_client(host).api
    try:
        with client.calling(host, f"running {spec.image}"):
            host_config = api.create_host_config(
                port_bindings={f"{p.private}/{p.protocol}": [(p.ip, p.public) if p.public else (p.ip,)]
                               for p in spec.ports} or None,
                binds=[f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts] or None,
                restart_policy=_restart_policy(spec.restart_policy),
                mem_limit=spec.memory, nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
                pids_limit=spec.pids_limit,
            )
            created = api.create_container(
                spec.image, command=spec.command or None, name=spec.name or None, environment=spec.env or None,
                labels=labels, ports=[(p.private, p.protocol) for p in spec.ports] or None,
                host_config=host_config, detach=True)
            engine_id = created["Id"]
            try:
                api.start(engine_id)
            finally:
                # Created even when start failed (as docker run leaves it): the list must show it.
                sync_container(host, engine_id)
    except EngineError as e:
        record("container.run", actor=user, object_type="container", object_name=audit_name,
               team_slug=team.slug if team else "", host_name=host.name, result="failed", message=e.message)
        raise
    container = Container.objects.get(host=host, engine_id=engine_id)
    record("container.run", actor=user, obj=container, message=f"image {spec.image}")
    return container


def start_container(user, ref: str, host: Host | None = None) -> Container:
    return _act(user, ref, "start", lambda api, cid: api.start(cid), host)


def stop_container(user, ref: str, timeout: int | None = None, host: Host | None = None) -> Container:
    return _act(user, ref, "stop", lambda api, cid: api.stop(cid, timeout=timeout), host)


def restart_container(user, ref: str, timeout: int | None = None, host: Host | None = None) -> Container:
    return _act(user, ref, "restart", lambda api, cid: api.restart(cid, timeout=10 if timeout is None else timeout),
                host)


def kill_container(user, ref: str, signal: str = "KILL", host: Host | None = None) -> Container:
    return _act(user, ref, "kill", lambda api, cid: api.kill(cid, signal=signal), host)


def remove_container(user, ref: str, force: bool = False, volumes: bool = False, host: Host | None = None) -> None:
    """Remove the container from its engine, then its row."""
    c = get_for_user(Container, user, ref, "operate", host=host, audit="container.remove")
    try:
        with client.calling(c.host, f"removing container {c.name}"):
            client.engine_client(c.host).api.remove_container(c.engine_id, v=volumes, force=force)
    except EngineNotFound:
        pass  # already gone from the engine (removed with the CLI): the row goes too
    except EngineError as e:
        record("container.remove", actor=user, obj=c, result="failed", message=e.message)
        raise
    record("container.remove", actor=user, obj=c, message="forced" if force else "")
    Container.objects.filter(pk=c.pk).delete()


def assign_container(user, ref: str, team: Team | None, host: Host | None = None) -> Container:
    """Give a container to a team, or take it back (site admins; recorded in the database only)."""
    c = get_container(user, ref, "view", host)
    if not is_site_admin(user):
        record("container.assign", actor=user, obj=c, result="denied", message="site admins only")
        raise PermissionDenied("Only site admins may give containers to teams")
    if c.labels.get(TEAM_LABEL):
        raise ValidationError({"team": [f"container {c.name} carries the label {TEAM_LABEL}="
                                        f"{c.labels[TEAM_LABEL]}: the label decides its team"]})
    Container.objects.filter(pk=c.pk).update(team=team)
    c.team = team
    record("container.assign", actor=user, obj=c, message=f"to team {team.slug}" if team else "unassigned")
    return c


def prune_containers(user, team_slug: str = "", host: Host | None = None) -> dict:
    """Remove the stopped containers of a team (its admins), or all stopped ones (site admins, no team)."""
    team = team_for_user(user, team_slug, "admin")
    host = host or Host.default()
    filters = {"label": [f"{TEAM_LABEL}={team.slug}"]} if team else None
    try:
        with client.calling(host, "pruning containers"):
            result = client.engine_client(host).api.prune_containers(filters=filters)
    except EngineError as e:
        record("container.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
               result="failed", message=e.message)
        raise
    deleted = result.get("ContainersDeleted") or []
    Container.objects.filter(host=host, engine_id__in=deleted).delete()
    record("container.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
           message=f"{len(deleted)} removed")
    return result


def bulk_action(user, action: str, refs: list[str], host: Host | None = None):
    """Queue a Job that applies action to every container in refs; check each now, and again in the task."""
    from dockweb.containers import tasks
    from dockweb.core.jobs import create_job, enqueue

    if action not in BULK_ACTIONS:
        raise ValidationError({"action": [f"{action!r}: use one of {', '.join(BULK_ACTIONS)}"]})
    if not refs:
        raise ValidationError({"refs": ["pick at least one container"]})
    containers = [get_container(user, ref, "operate", host) for ref in refs]
    teams = {c.team_id for c in containers}
    job = create_job(user, "containers.bulk", host=containers[0].host,
                     team=containers[0].team if len(teams) == 1 else None,
                     target=f"{action} {len(containers)} container(s)",
                     params={"action": action, "ids": [c.engine_id for c in containers]})
    return enqueue(job, tasks.bulk_action)


def run_bulk_action(job) -> None:
    """The bulk task's work: act on each container as the job's user; fail the job if any failed."""
    action, ids = job.params["action"], job.params["ids"]
    verbs = {"start": start_container, "stop": stop_container, "restart": restart_container,
             "kill": kill_container, "remove": remove_container}
    failures = []
    for n, engine_id in enumerate(ids, 1):
        try:
            verbs[action](job.user, engine_id)
            job.append_log(f"{action} {engine_id[:12]}: ok")
        except (EngineError, PermissionDenied) as e:
            failures.append(f"{engine_id[:12]}: {e}")
            job.append_log(f"{action} {engine_id[:12]}: {e}")
        except Exception as e:  # Http404 and the like: the container left, or the user lost access
            failures.append(f"{engine_id[:12]}: {e}")
            job.append_log(f"{action} {engine_id[:12]}: {e}")
        job.set_progress(n / len(ids), f"{n} of {len(ids)}")
    if failures:
        raise EngineError(f"{len(failures)} of {len(ids)} failed: " + "; ".join(failures))


def _act(user, ref, verb, call, host) -> Container:
    c = get_for_user(Container, user, ref, "operate", host=host, audit=f"container.{verb}")
    try:
        with client.calling(c.host, f"{verb} container {c.name}"):
            call(client.engine_client(c.host).api, c.engine_id)
    except EngineError as e:
        record(f"container.{verb}", actor=user, obj=c, result="failed", message=e.message)
        raise
    record(f"container.{verb}", actor=user, obj=c)
    return sync_container(c.host, c.engine_id) or c


def _host_for(user, name: str) -> Host:
    if not name:
        return Host.default()
    return get_for_user(Host, user, name, "view")


def _check_mounts(user, spec: RunSpec, team: Team | None, host: Host) -> None:
    """Bind mounts reach the host's files: site admins only. Named volumes must be the team's own."""
    from dockweb.volumes.models import Volume

    for m in spec.mounts:
        if m.is_bind:
            if not is_site_admin(user):
                raise ValidationError({"volumes": [f"{m.source}: only site admins may mount host paths"]})
            continue
        vol = Volume.objects.filter(host=host, name=m.source).first()
        if vol is not None and not can(user, "operate", vol):
            # Another team's volume answers as if it did not exist, but run must not create a twin either.
            raise ValidationError({"volumes": [f"{m.source}: no such volume of your team"]})


def _restart_policy(text: str) -> dict | None:
    if text in ("", "no"):
        return None
    name, _, retries = text.partition(":")
    policy = {"Name": name}
    if retries:
        policy["MaximumRetryCount"] = int(retries)
    return policy


# --- following the engine ------------------------------------------------------------------------------------

def fields_from_inspect(attrs: dict) -> dict:
    """Map an engine inspect document onto Container fields (team excepted)."""
    st = attrs.get("State") or {}
    cfg = attrs.get("Config") or {}
    state = st.get("Status") or "created"
    return {
        "name": (attrs.get("Name") or "").lstrip("/"),
        "image": cfg.get("Image") or "",
        "image_id": attrs.get("Image") or "",
        "command": " ".join([attrs.get("Path") or "", *(attrs.get("Args") or [])]).strip(),
        "state": state,
        "exit_code": st.get("ExitCode") if state in ("exited", "dead") else None,
        "labels": cfg.get("Labels") or {},
        "ports": _ports(attrs),
        "created": parse_engine_time(attrs.get("Created")),
        "started_at": parse_engine_time(st.get("StartedAt")),
        "finished_at": parse_engine_time(st.get("FinishedAt")),
    }


def _ports(attrs: dict) -> list[dict]:
    live = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    bound = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    out = []
    for key, bindings in sorted((live or bound).items()):
        private, _, proto = key.partition("/")
        for b in bindings or [{}]:
            public = b.get("HostPort")
            out.append({"private": int(private), "type": proto or "tcp", "public": int(public) if public else None,
                        "ip": b.get("HostIp") or ""})
    return out


def sync_container(host: Host, engine_id: str, teams: TeamCache | None = None) -> Container | None:
    """Re-read one container from the engine into its row; delete the row when the engine no longer has it."""
    try:
        with client.calling(host, f"inspecting container {engine_id[:12]}"):
            attrs = client.engine_client(host).api.inspect_container(engine_id)
    except EngineNotFound:
        Container.objects.filter(host=host, engine_id=engine_id).delete()
        return None
    return _upsert(host, attrs, teams or TeamCache())


def _upsert(host: Host, attrs: dict, teams: TeamCache) -> Container:
    fields = fields_from_inspect(attrs)
    for attempt in (1, 2):
        row = Container.objects.filter(host=host, engine_id=attrs["Id"]).first()
        fields["team_id"] = team_id_for(fields["labels"], row.team_id if row else None, teams)
        fields["synced_at"] = timezone.now()
        if row is not None:
            Container.objects.filter(pk=row.pk).update(**fields)
            row.__dict__.update(fields)
            return row
        try:
            with transaction.atomic():
                return Container.objects.create(host=host, engine_id=attrs["Id"], **fields)
        except IntegrityError:
            if attempt == 2:
                raise
            # The events listener and a service synced the same new container at once: update instead.
    raise AssertionError("unreachable")


def delete_container_row(host: Host, engine_id: str) -> None:
    Container.objects.filter(host=host, engine_id=engine_id).delete()


def reconcile(host: Host) -> Drift:
    """Make the host's container rows match the engine's list: add, update and delete what drifted."""
    started = timezone.now()
    with client.calling(host, "listing containers"):
        summaries = client.engine_client(host).api.containers(all=True)
    rows = {c.engine_id: c for c in Container.objects.filter(host=host)}
    teams = TeamCache()
    drift = Drift()
    for s in summaries:
        row = rows.pop(s["Id"], None)
        labels = s.get("Labels") or {}
        if row is not None and row.name == (s.get("Names") or ["/"])[0].lstrip("/") and row.state == s.get("State") \
                and row.labels == labels and row.team_id == team_id_for(labels, row.team_id, teams):
            continue
        if sync_container(host, s["Id"], teams) is not None:
            if row is None:
                drift.added += 1
            else:
                drift.updated += 1
    # Rows the engine did not list are gone, unless synced after the list was taken (created meanwhile).
    gone = [row.pk for row in rows.values() if row.synced_at < started]
    drift.removed = len(gone)
    Container.objects.filter(pk__in=gone).delete()
    return drift
