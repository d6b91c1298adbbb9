"""Pages of core: overview (with host disk usage and events loaded by htmx), jobs, audit log; page helpers."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, is_site_admin, visible
from dockweb.core import jobs, services
from dockweb.core.audit import can_read_audit, visible_entries
from dockweb.core.errors import EngineError
from dockweb.core.models import AuditEntry, Job

AUDIT_FILTERS = ("action", "result", "team_slug", "actor_name", "object_type")


@contextmanager
def shown_as_message(request):
    """Turn an engine refusal or a validation error inside the block into an error message on the next page."""
    try:
        yield
    except EngineError as e:
        messages.error(request, e.message)
    except ValidationError as e:
        messages.error(request, "; ".join(e.messages))


def page(request, qs, per_page: int = 50):
    return Paginator(qs, per_page).get_page(request.GET.get("page"))


def is_htmx(request) -> bool:
    """True for requests htmx sent (they want a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def htmx_redirect(url: str) -> HttpResponse:
    """Tell htmx to load url as a whole page (after a POST whose result is another page)."""
    response = HttpResponse(status=204)
    response["HX-Redirect"] = url
    return response


def teams_where(user, action: str) -> list[Team]:
    """Return the teams in which user may do action (the choices of a create or prune form)."""
    return [t for t in visible(Team, user) if can(user, action, t)]


def may_create(user) -> bool:
    """True when user may create objects somewhere: a site admin, or an operator or admin of some team."""
    return is_site_admin(user) or bool(teams_where(user, "operate"))


def pretty_json(doc) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


@login_required
def overview(request):
    return render(request, "core/overview.html", services.overview(request.user))


@login_required
def host_disk(request, name: str):
    """Fragment: the host's disk usage by kind (an engine call, so the overview loads it after the page)."""
    usage, error = {}, ""
    try:
        usage = services.disk_usage(request.user, name)
    except EngineError as e:
        error = e.message
    return render(request, "core/_disk.html", {"usage": usage, "engine_error": error, "host_name": name})


@login_required
def host_events(request, name: str):
    """Fragment: the host's latest engine events about objects the user may see."""
    events, error = [], ""
    try:
        events = services.recent_events(request.user, name, limit=15)
    except EngineError as e:
        error = e.message
    for ev in events:
        ev["when"] = datetime.fromtimestamp(ev["time"], tz=timezone.utc) if ev.get("time") else None
    return render(request, "core/_events.html", {"events": events, "engine_error": error, "host_name": name})


@login_required
def job_list(request):
    qs = jobs.list_jobs(request.user)
    state = request.GET.get("state", "")
    if state:
        qs = qs.filter(state=state)
    context = {"page": page(request, qs), "state": state, "states": Job.State.values}
    return render(request, "core/_jobs_table.html" if is_htmx(request) else "core/jobs.html", context)


@login_required
def job_detail(request, pk: int):
    job = jobs.get_job(request.user, pk)
    return render(request, "core/_job.html" if is_htmx(request) else "core/job.html", {"job": job})


@login_required
def audit_list(request):
    if not can_read_audit(request.user):
        raise PermissionDenied("The audit log is for site admins and team admins")
    filters = {f: request.GET[f].strip() for f in AUDIT_FILTERS if request.GET.get(f, "").strip()}
    qs = visible_entries(request.user).filter(**filters)
    context = {"page": page(request, qs), "filters": filters, "results": AuditEntry.Result.values}
    return render(request, "core/_audit_table.html" if is_htmx(request) else "core/audit.html", context)
