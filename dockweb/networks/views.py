"""Network pages: list, detail, create, remove, connect/disconnect a container, prune (POST)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, is_site_admin, visible
from dockweb.containers.models import Container
from dockweb.core.errors import EngineError
from dockweb.core.views import htmx_redirect, is_htmx, page, pretty_json, shown_as_message, teams_where
from dockweb.networks import services


@login_required
def network_list(request):
    search, team = request.GET.get("search", "").strip(), request.GET.get("team", "")
    qs = services.list_networks(request.user, search=search, team=team)
    context = {"page": page(request, qs), "search": search, "team": team, "teams": visible(Team, request.user),
               "create_teams": teams_where(request.user, "operate"), "prune_teams": teams_where(request.user, "admin"),
               "site_admin": is_site_admin(request.user)}
    return render(request, "networks/_table.html" if is_htmx(request) else "networks/list.html", context)


@login_required
def network_detail(request, ref: str):
    net = services.get_network(request.user, ref)
    inspect, error = {}, ""
    try:
        inspect = services.inspect_network(request.user, ref)
    except EngineError as e:
        error = e.message
    attached = {e["id"] for e in net.endpoints}
    candidates = [c for c in visible(Container, request.user).filter(host=net.host).order_by("name")
                  if c.engine_id not in attached and can(request.user, "operate", c)]
    return render(request, "networks/detail.html", {
        "network": net, "engine_error": error, "labels": sorted((net.labels or {}).items()),
        "inspect_json": pretty_json(inspect) if inspect else "", "candidates": candidates,
        "can_operate": can(request.user, "operate", net) and not net.predefined,
        "operable": {c.engine_id for c in visible(Container, request.user).filter(host=net.host)
                     if can(request.user, "operate", c)}})


@login_required
@require_POST
def network_create(request):
    p = request.POST
    with shown_as_message(request):
        net = services.create_network(request.user, p.get("name", "").strip(), p.get("team", ""),
                                      subnet=p.get("subnet", "").strip(), gateway=p.get("gateway", "").strip(),
                                      internal=p.get("internal") == "1")
        messages.success(request, f"created network {net.name}")
        return redirect("network-detail", ref=net.name)
    return redirect("network-list")


@login_required
@require_POST
def network_remove(request, ref: str):
    with shown_as_message(request):
        services.remove_network(request.user, ref)
        messages.success(request, f"removed network {ref}")
        url = reverse("network-list")
        return htmx_redirect(url) if is_htmx(request) else redirect(url)
    return redirect("network-detail", ref=ref)


@login_required
@require_POST
def network_attach(request, ref: str, verb: str):
    if verb not in ("connect", "disconnect"):
        raise Http404(f"no such network action: {verb}")
    container = request.POST.get("container", "")
    with shown_as_message(request):
        if verb == "connect":
            aliases = [a for a in request.POST.get("aliases", "").replace(",", " ").split() if a]
            services.connect(request.user, ref, container, aliases)
            messages.success(request, f"connected {container} to {ref}")
        else:
            services.disconnect(request.user, ref, container, force=request.POST.get("force") == "1")
            messages.success(request, f"disconnected {container} from {ref}")
    return redirect("network-detail", ref=ref)


@login_required
@require_POST
def network_prune(request):
    with shown_as_message(request):
        result = services.prune_networks(request.user, request.POST.get("team", ""))
        messages.success(request, f"pruned {len(result.get('NetworksDeleted') or [])} network(s)")
    return redirect("network-list")
