"""Host pages: list with health, add, detail with counts, change, check now, remove (changes: site admins)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dockweb.accounts.permissions import get_for_user, is_site_admin, visible
from dockweb.containers.models import Container
from dockweb.hosts import services
from dockweb.hosts.models import Host
from dockweb.images.models import Image
from dockweb.networks.models import Network
from dockweb.volumes.models import Volume


@login_required
def host_list(request):
    form, errors = {}, {}
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("name", "engine_url", "queue")}
        try:
            host = services.create_host(request.user, form["name"], form["engine_url"], form["queue"])
        except ValidationError as e:
            errors = e.message_dict
        else:
            messages.success(request, f"added host {host.name}: its engine is {host.health}")
            return redirect("host-detail", name=host.name)
    hosts = services.list_hosts(request.user).order_by("name")
    return render(request, "hosts/list.html", {"hosts": hosts, "site_admin": is_site_admin(request.user),
                                               "form": form, "errors": errors}, status=400 if errors else 200)


@login_required
def host_detail(request, name: str):
    host = get_for_user(Host, request.user, name, "view")
    form, errors = {"engine_url": host.engine_url, "queue": host.queue}, {}
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("engine_url", "queue")}
        try:
            host = services.update_host(request.user, host, form["engine_url"], form["queue"])
        except ValidationError as e:
            errors = e.message_dict
        else:
            messages.success(request, f"saved host {host.name}: its engine is {host.health}")
            return redirect("host-detail", name=host.name)
    counts = {label: visible(model, request.user).filter(host=host).count()
              for label, model in (("containers", Container), ("images", Image), ("volumes", Volume),
                                   ("networks", Network))}
    return render(request, "hosts/detail.html", {"host": host, "counts": counts, "form": form, "errors": errors,
                                                 "site_admin": is_site_admin(request.user)},
                  status=400 if errors else 200)


@login_required
@require_POST
def host_check(request, name: str):
    host = services.check_health(get_for_user(Host, request.user, name, "view"))
    (messages.success if host.health == Host.Health.UP else messages.error)(
        request, f"{host.name}: engine {host.health}" + (f" ({host.health_message})" if host.health_message else ""))
    return redirect("host-detail", name=host.name)


@login_required
@require_POST
def host_remove(request, name: str):
    host = get_for_user(Host, request.user, name, "view")
    if not is_site_admin(request.user):
        raise PermissionDenied("Only site admins manage hosts")
    services.remove_host(request.user, host)
    messages.success(request, f"removed host {name} from dockweb; its engine and containers are untouched")
    return redirect("host-list")
