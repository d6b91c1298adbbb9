"""Volume pages: list, detail, create, remove, prune (POST)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, is_site_admin, visible
from dockweb.core.errors import EngineError
from dockweb.core.views import htmx_redirect, is_htmx, page, pretty_json, shown_as_message, teams_where
from dockweb.volumes import services


@login_required
def volume_list(request):
    search, team = request.GET.get("search", "").strip(), request.GET.get("team", "")
    qs = services.list_volumes(request.user, search=search, team=team)
    context = {"page": page(request, qs), "search": search, "team": team, "teams": visible(Team, request.user),
               "create_teams": teams_where(request.user, "operate"), "prune_teams": teams_where(request.user, "admin"),
               "site_admin": is_site_admin(request.user)}
    return render(request, "volumes/_table.html" if is_htmx(request) else "volumes/list.html", context)


@login_required
def volume_detail(request, ref: str):
    vol = services.get_volume(request.user, ref)
    inspect, error = {}, ""
    try:
        inspect = services.inspect_volume(request.user, ref)
    except EngineError as e:
        error = e.message
    return render(request, "volumes/detail.html", {
        "volume": vol, "engine_error": error, "labels": sorted((vol.labels or {}).items()),
        "inspect_json": pretty_json(inspect) if inspect else "", "can_operate": can(request.user, "operate", vol)})


@login_required
@require_POST
def volume_create(request):
    with shown_as_message(request):
        vol = services.create_volume(request.user, request.POST.get("name", "").strip(), request.POST.get("team", ""))
        messages.success(request, f"created volume {vol.name}")
        return redirect("volume-detail", ref=vol.name)
    return redirect("volume-list")


@login_required
@require_POST
def volume_remove(request, ref: str):
    with shown_as_message(request):
        services.remove_volume(request.user, ref, force=request.POST.get("force") == "1")
        messages.success(request, f"removed volume {ref}")
        url = reverse("volume-list")
        return htmx_redirect(url) if is_htmx(request) else redirect(url)
    return redirect("volume-detail", ref=ref)


@login_required
@require_POST
def volume_prune(request):
    with shown_as_message(request):
        result = services.prune_volumes(request.user, request.POST.get("team", ""),
                                        named=request.POST.get("all") == "1")
        messages.success(request, f"pruned {len(result.get('VolumesDeleted') or [])} volume(s)")
    return redirect("volume-list")
