"""Backup pages: overview, policy form, a volume's backups tab, restore confirmation, team backup settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, get_for_user, visible
from dockweb.backups import services
from dockweb.backups.forms import PolicyForm
from dockweb.backups.models import S3Target
from dockweb.core.errors import EngineError
from dockweb.core.views import shown_as_message, teams_where
from dockweb.volumes import services as volumes


@login_required
def overview(request):
    context = services.overview(request.user)
    context["teams"] = teams_where(request.user, "admin")
    return render(request, "backups/overview.html", context)


def _policy_form(request, policy=None):
    teams = teams_where(request.user, "operate")
    vols = [v for v in volumes.list_volumes(request.user) if v.team_id and can(request.user, "operate", v)]
    targets = [t for t in visible(S3Target, request.user) if can(request.user, "operate", t)]
    initial = {}
    if policy is not None:
        initial = {f: getattr(policy, f) for f in PolicyForm.base_fields if hasattr(policy, f)}
        initial.update(team=policy.team.slug, volume=policy.volume_name, passphrase="",
                       s3_target=str(policy.s3_target_id or ""))
    elif request.GET.get("volume"):
        initial["volume"] = request.GET["volume"]
    return PolicyForm(request.POST or None, teams=teams, volumes=vols, s3_targets=targets,
                      editing=policy is not None, initial=initial)


@login_required
def policy_edit(request, pk: int | None = None):
    policy = services.get_policy(request.user, pk, "operate") if pk else None
    form = _policy_form(request, policy)
    if request.method == "POST":
        data = request.POST.dict()
        data["enabled"] = request.POST.get("enabled") == "on"
        try:
            policy = services.save_policy(request.user, data, policy)
            messages.success(request, f"saved backup policy {policy.name}")
            return redirect("backup-overview")
        except ValidationError as e:
            form.is_valid()
            form.apply_errors(e)
    return render(request, "backups/policy_form.html", {"form": form, "policy": policy})


@login_required
@require_POST
def policy_delete(request, pk: int):
    with shown_as_message(request):
        services.delete_policy(request.user, pk)
        messages.success(request, "deleted the backup policy (its backups stay)")
    return redirect("backup-overview")


@login_required
@require_POST
def policy_run(request, pk: int):
    with shown_as_message(request):
        jobs = services.start_policy_run(request.user, pk)
        if len(jobs) == 1:
            return redirect("job-detail", pk=jobs[0].pk)
        messages.success(request, f"queued {len(jobs)} backups")
    return redirect("backup-overview")


def _host(request):
    from dockweb.hosts.models import Host

    name = request.GET.get("host") or request.POST.get("host")
    return get_for_user(Host, request.user, name, "view") if name else None


@login_required
def volume_backups(request, ref: str):
    vol = volumes.get_volume(request.user, ref, "view", _host(request))
    return render(request, "backups/volume.html", {
        "volume": vol, "backups": services.list_backups(request.user, vol),
        "policies": [p for p in services.list_policies(request.user) if vol in services.policy_volumes(p)],
        "can_operate": can(request.user, "operate", vol)})


@login_required
@require_POST
def volume_backup_now(request, ref: str):
    with shown_as_message(request):
        job = services.start_backup(request.user, ref, _host(request))
        return redirect("job-detail", pk=job.pk)
    return redirect("backup-volume", ref=ref)


@login_required
@require_POST
def volume_upload(request, ref: str):
    upload = request.FILES.get("archive")
    try:
        if upload is None:
            raise ValidationError({"archive": ["choose an archive file to upload"]})
        strip = int(request.POST.get("strip") or 0)
        rec = services.upload_archive(request.user, ref, upload.chunks(1 << 20), strip, _host(request))
        messages.success(request, f"uploaded {upload.name} as backup {rec.pk}: {rec.files} files; restore it below")
    except ValueError:
        messages.error(request, "strip must be a whole number")
    except ValidationError as e:
        messages.error(request, "; ".join(e.messages))
    except EngineError as e:
        messages.error(request, e.message)
    return redirect("backup-volume", ref=ref)


@login_required
@require_POST
def backup_verify(request, pk: int):
    with shown_as_message(request):
        job = services.start_verify(request.user, pk)
        return redirect("job-detail", pk=job.pk)
    return redirect("backup-overview")


@login_required
@require_POST
def backup_delete(request, pk: int):
    rec = services.get_backup(request.user, pk, "view")
    with shown_as_message(request):
        services.delete_backup(request.user, pk)
        messages.success(request, f"deleted backup {pk}")
    return redirect("backup-volume", ref=rec.volume_name)


@login_required
def backup_download(request, pk: int):
    rec, chunks = services.download(request.user, pk)
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{rec.filename}"'
    return response


@login_required
def backup_restore(request, pk: int):
    rec = services.get_backup(request.user, pk, "operate")
    mode = request.POST.get("mode") or request.GET.get("mode") or "new"
    target = (request.POST.get("volume") or request.GET.get("volume") or "").strip()
    errors: dict = {}
    if request.method == "POST":
        try:
            job = services.start_restore(request.user, pk, target if mode == "new" else rec.volume_name,
                                         new_volume=mode == "new", confirm=request.POST.get("confirm", ""),
                                         secret=request.POST.get("secret", ""))
            return redirect("job-detail", pk=job.pk)
        except ValidationError as e:
            errors = e.message_dict
        except EngineError as e:
            errors = {"__all__": [e.message]}
    plan, engine_error = None, ""
    try:
        plan = services.restore_plan(request.user, pk)
    except EngineError as e:
        engine_error = e.message
    return render(request, "backups/restore.html", {"backup": rec, "plan": plan, "mode": mode, "target": target,
                                                    "errors": errors, "engine_error": engine_error,
                                                    "suggested": f"{rec.volume_name}-restored"})


@login_required
def team_settings(request, slug: str):
    team = get_for_user(Team, request.user, slug, "admin")
    errors: dict = {}
    if request.method == "POST":
        try:
            if request.POST.get("form") == "s3":
                services.save_s3_target(request.user, slug, request.POST.dict())
                messages.success(request, "added the S3 target")
            else:
                services.update_team_settings(request.user, slug, request.POST.get("timezone", "").strip(),
                                              request.POST.get("webhook_url", "").strip())
                messages.success(request, "saved the team's backup settings")
            return redirect("backup-team", slug=slug)
        except ValidationError as e:
            errors = e.message_dict
    return render(request, "backups/team.html", {"team": team, "errors": errors,
                                                 "targets": S3Target.objects.filter(team=team)})


@login_required
@require_POST
def s3_target_delete(request, pk: int):
    target = get_for_user(S3Target, request.user, pk, "admin")
    try:
        services.delete_s3_target(request.user, pk)
        messages.success(request, f"removed S3 target {target.name}")
    except ValidationError as e:
        messages.error(request, "; ".join(e.messages))
    return redirect("backup-team", slug=target.team.slug)


