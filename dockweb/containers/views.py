"""Container pages: list (htmx filters, bulk actions), detail with a log tail, run form, actions (POST), log download."""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, get_for_user, is_site_admin, visible
from dockweb.containers import services
from dockweb.containers.forms import RunForm
from dockweb.containers.models import Container
from dockweb.containers.runspec import parse_run_input
from dockweb.core.errors import EngineError
from dockweb.core.views import htmx_redirect, is_htmx, may_create, page, pretty_json, shown_as_message, teams_where
from dockweb.images.services import list_images

ACTIONS = ("start", "stop", "restart", "kill", "remove")
FILTERS = ("state", "team", "label", "image", "search", "order")
SORTS = (("name", "Name"), ("image", "Image"), ("state", "State"), ("created", "Created"), ("team__name", "Team"),
         ("host__name", "Host"))
LOG_TAIL = 100


@login_required
def container_list(request):
    filters = {f: request.GET.get(f, "").strip() for f in FILTERS}
    qs = services.list_containers(request.user, **{k: v for k, v in filters.items() if v})
    rows = page(request, qs)
    for c in rows:
        c.can_operate = can(request.user, "operate", c)
    context = {"page": rows, "filters": filters, "sorts": SORTS, "states": Container.State.values,
               "teams": visible(Team, request.user), "can_bulk": any(c.can_operate for c in rows),
               "can_run": may_create(request.user), "actions": services.BULK_ACTIONS}
    return render(request, "containers/_table.html" if is_htmx(request) else "containers/list.html", context)


@login_required
def container_detail(request, ref: str):
    c = services.get_container(request.user, ref)
    inspect, logs, error = {}, "", ""
    can_logs = can(request.user, "logs", c)
    try:
        inspect = services.inspect_container(request.user, c.engine_id)
        if can_logs:
            logs = services.container_logs(request.user, c.engine_id, tail=LOG_TAIL)
    except EngineError as e:
        error = e.message
    config = inspect.get("Config") or {}
    host_config = inspect.get("HostConfig") or {}
    env = services.masked_env(config.get("Env"))
    # The inspect document carries the environment too: show it with the same values masked.
    shown = copy.deepcopy(inspect)
    if config.get("Env"):
        shown["Config"]["Env"] = [f"{name}={value}" for name, value in env]
    return render(request, "containers/detail.html", {
        "container": c, "env": env, "logs": logs, "log_tail": LOG_TAIL, "engine_error": error,
        "mounts": inspect.get("Mounts") or [], "labels": sorted((c.labels or {}).items()),
        "restart_policy": (host_config.get("RestartPolicy") or {}), "memory": host_config.get("Memory") or 0,
        "cpus": (host_config.get("NanoCpus") or 0) / 1e9, "pids_limit": host_config.get("PidsLimit") or 0,
        "inspect_json": pretty_json(shown) if inspect else "",
        "can_operate": can(request.user, "operate", c), "can_logs": can_logs,
        "can_assign": is_site_admin(request.user) and not c.labels.get("dockweb.team"),
        "tty": bool(config.get("Tty")),
        "teams": visible(Team, request.user)})


@login_required
def container_log_tail(request, ref: str):
    """Fragment: the last lines of the container's output (the detail page refreshes it with htmx)."""
    tail = request.GET.get("tail", "")
    tail = int(tail) if tail.isdigit() else LOG_TAIL
    c = services.get_container(request.user, ref, "logs")
    logs, error = "", ""
    try:
        logs = services.container_logs(request.user, c.engine_id, tail=tail)
    except EngineError as e:
        error = e.message
    return render(request, "containers/_logs.html", {"container": c, "logs": logs, "engine_error": error,
                                                     "log_tail": tail})


@login_required
def container_attach(request, ref: str):
    """A terminal attached to the container's main process (the socket checks the role and the TTY again)."""
    c = services.get_container(request.user, ref, "operate")
    return render(request, "containers/attach.html", {"container": c})


@login_required
def container_logs_download(request, ref: str):
    c = services.get_container(request.user, ref, "logs")
    tail = request.GET.get("tail", "all")
    text = services.container_logs(request.user, c.engine_id, tail=int(tail) if tail.isdigit() else None)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{c.name}.log"'
    return response


@login_required
@require_POST
def container_action(request, ref: str, action: str):
    if action not in ACTIONS:
        raise Http404(f"No such container action: {action}")
    verbs = {"start": services.start_container, "stop": services.stop_container,
             "restart": services.restart_container, "kill": services.kill_container,
             "remove": services.remove_container}
    with shown_as_message(request):
        verbs[action](request.user, ref)
        messages.success(request, f"{action}: {ref[:12] if len(ref) == 64 else ref}")
        if action == "remove":
            url = reverse("container-list")
            return htmx_redirect(url) if is_htmx(request) else redirect(url)
    return redirect("container-detail", ref=ref)


@login_required
@require_POST
def container_assign(request, ref: str):
    """Give an unlabelled container (made with the docker CLI) to a team, or take it back (site admins)."""
    slug = request.POST.get("team", "")
    team = get_for_user(Team, request.user, slug, "view") if slug else None
    with shown_as_message(request):
        services.assign_container(request.user, ref, team)
        messages.success(request, f"given to {team.name}" if team else "unassigned")
    return redirect("container-detail", ref=ref)


@login_required
@require_POST
def container_bulk(request):
    with shown_as_message(request):
        job = services.bulk_action(request.user, request.POST.get("action", ""), request.POST.getlist("refs"))
        return redirect("job-detail", pk=job.pk)
    return redirect(reverse("container-list") + ("?" + request.POST["back"] if request.POST.get("back") else ""))


@login_required
def container_run(request):
    teams = teams_where(request.user, "operate")
    site_admin = is_site_admin(request.user)
    if not teams and not site_admin:
        raise PermissionDenied("Running a container needs the operator or admin role in a team")
    form = RunForm(request.POST or None, teams=teams, allow_unassigned=site_admin)
    status = 200
    if request.method == "POST":
        try:
            c = services.run_container(request.user, parse_run_input(form.run_input()))
        except ValidationError as e:
            form.show_errors(e.message_dict)
            status = 400
        except PermissionDenied as e:
            form.show_errors({"team": [str(e)]})
            status = 403
        except EngineError as e:
            form.show_errors({"__all__": [e.message]})
            status = 400 if e.status in (400, 404, 409) else 502
        else:
            messages.success(request, f"started {c.name}" if c.state == "running" else f"created {c.name}")
            return redirect("container-detail", ref=c.engine_id)
    images = sorted({tag for image in list_images(request.user) for tag in image.tags})
    return render(request, "containers/run.html", {"form": form, "image_tags": images}, status=status)
