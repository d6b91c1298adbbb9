"""Image pages: list, detail (history, inspect), remove, tag, prune, pull (POST), build."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dockweb.accounts.permissions import can, is_site_admin
from dockweb.core.errors import EngineError
from dockweb.core.views import htmx_redirect, is_htmx, page, pretty_json, shown_as_message, teams_where
from dockweb.images import services

SORTS = (("tags_text", "Tags"), ("size", "Size"), ("created", "Created"))


@login_required
def image_list(request):
    search, order = request.GET.get("search", "").strip(), request.GET.get("order", "tags_text")
    qs = services.list_images(request.user, search=search, order=order)
    site_admin = is_site_admin(request.user)
    context = {"page": page(request, qs), "search": search, "order": order, "sorts": SORTS,
               "pull_teams": teams_where(request.user, "operate"), "prune_teams": teams_where(request.user, "admin"),
               "site_admin": site_admin}
    return render(request, "images/_table.html" if is_htmx(request) else "images/list.html", context)


@login_required
def image_detail(request, ref: str):
    image = services.get_image(request.user, ref)
    history, inspect, error = [], {}, ""
    try:
        inspect = services.inspect_image(request.user, image.engine_id)
        history = services.image_history(request.user, image.engine_id)
    except EngineError as e:
        error = e.message
    config = inspect.get("Config") or {}
    return render(request, "images/detail.html", {
        "image": image, "history": history, "engine_error": error, "config": config,
        "labels": sorted((image.labels or {}).items()), "inspect_json": pretty_json(inspect) if inspect else "",
        "can_operate": can(request.user, "operate", image)})


@login_required
@require_POST
def image_remove(request, ref: str):
    with shown_as_message(request):
        services.remove_image(request.user, ref, force=request.POST.get("force") == "1")
        messages.success(request, f"removed {ref}")
        url = reverse("image-list")
        return htmx_redirect(url) if is_htmx(request) else redirect(url)
    return redirect("image-detail", ref=ref)


@login_required
@require_POST
def image_tag(request, ref: str):
    with shown_as_message(request):
        repo, _, tag = request.POST.get("repo", "").strip().partition(":")
        services.tag_image(request.user, ref, repo, request.POST.get("tag", "").strip() or tag or "latest")
        messages.success(request, "tagged")
    return redirect("image-detail", ref=ref)


@login_required
@require_POST
def image_pull(request):
    with shown_as_message(request):
        job = services.pull_image(request.user, request.POST.get("image", ""), request.POST.get("team", ""))
        return redirect("job-detail", pk=job.pk)
    return redirect("image-list")


@login_required
@require_POST
def image_prune(request):
    with shown_as_message(request):
        result = services.prune_images(request.user, request.POST.get("team", ""))
        messages.success(request, f"pruned {len(result.get('ImagesDeleted') or [])} image(s)")
    return redirect("image-list")


def _build_args(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines (blank lines and # comments skipped) into build args."""
    args, bad = {}, []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
            bad.append(f"line {n}: {line!r} is not KEY=VALUE")
            continue
        args[key.strip()] = value
    if bad:
        raise ValidationError({"buildargs": bad})
    return args


@login_required
def image_build(request):
    """Build an image from a Dockerfile typed here or an uploaded context tar; the build runs as a job."""
    teams = teams_where(request.user, "operate")
    form = {"tag": "", "dockerfile_text": "FROM busybox\nRUN echo hello > /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
            "dockerfile": "Dockerfile", "buildargs": "", "team": "", "nocache": False}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        p = request.POST
        form = {"tag": p.get("tag", "").strip(), "dockerfile_text": p.get("dockerfile_text", ""),
                "dockerfile": p.get("dockerfile", "").strip() or "Dockerfile", "buildargs": p.get("buildargs", ""),
                "team": p.get("team", ""), "nocache": p.get("nocache") == "1"}
        upload = request.FILES.get("context")
        try:
            job = services.build_image(
                request.user, tag=form["tag"], team_slug=form["team"], context=upload,
                dockerfile_text="" if upload else form["dockerfile_text"],
                dockerfile=form["dockerfile"] if upload else "Dockerfile",
                buildargs=_build_args(form["buildargs"]), nocache=form["nocache"])
        except ValidationError as e:
            errors = e.message_dict
        else:
            return redirect("job-detail", pk=job.pk)
    return render(request, "images/build.html", {"form": form, "errors": errors, "teams": teams,
                                                 "site_admin": is_site_admin(request.user)},
                  status=400 if errors else 200)
