"""Volume pages: list, detail, create, remove, prune (POST); the read-only file browser."""

from __future__ import annotations

import posixpath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
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


VIEW_LIMIT = 256 * 1024


def _clean_path(raw: str) -> str:
    return posixpath.normpath("/" + (raw or "").strip()).replace("//", "/")


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(p, "/" + "/".join(parts[:i + 1])) for i, p in enumerate(parts)]


@login_required
def volume_files(request, ref: str):
    """The file browser's directory listing (an htmx fragment of the detail page, or a page of its own)."""
    path = _clean_path(request.GET.get("path", "/"))
    vol = services.get_volume(request.user, ref)
    listing, error = {}, ""
    try:
        listing = services.list_files(request.user, ref, path)
    except EngineError as e:
        error = e.message
    context = {"volume": vol, "path": path, "crumbs": _crumbs(path), "listing": listing, "files_error": error,
               "parent": posixpath.dirname(path) if path != "/" else None}
    return render(request, "volumes/_files.html" if is_htmx(request) else "volumes/files.html", context)


@login_required
def volume_file(request, ref: str):
    """Show a file's beginning as text, or send the whole file when download=1."""
    path = _clean_path(request.GET.get("path", ""))
    vol = services.get_volume(request.user, ref)
    name = posixpath.basename(path)
    if request.GET.get("download") == "1":
        response, size = services.open_file(request.user, ref, path)
        streamed = StreamingHttpResponse(response.iter_content(1 << 16), content_type="application/octet-stream")
        streamed["Content-Length"] = str(size)
        streamed["Content-Disposition"] = f'attachment; filename="{name.replace(chr(34), "")}"'
        streamed["X-Content-Type-Options"] = "nosniff"
        return streamed
    text, binary, size, error = "", False, 0, ""
    try:
        response, size = services.open_file(request.user, ref, path, limit=VIEW_LIMIT)
        try:
            data = response.content
        finally:
            response.close()
        binary = b"\0" in data
        text = "" if binary else data.decode("utf-8", errors="replace")
    except EngineError as e:
        error = e.message
    return render(request, "volumes/file.html", {
        "volume": vol, "path": path, "name": name, "crumbs": _crumbs(path), "text": text, "binary": binary,
        "size": size, "truncated": size > VIEW_LIMIT, "files_error": error,
        "parent": posixpath.dirname(path) or "/"})
