"""Image verbs: list, inspect, history, remove, tag, prune, pull (a Job); and syncing image rows from the engine."""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from dockweb.accounts.models import TEAM_LABEL
from dockweb.accounts.permissions import get_for_user, team_for_user, visible
from dockweb.core.sync import Drift
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError, EngineNotFound
from dockweb.core.ownership import TeamCache, parse_engine_time, team_id_for
from dockweb.hosts.models import Host
from dockweb.images.models import Image

ORDERINGS = {"tags_text", "-tags_text", "size", "-size", "created", "-created"}


def list_images(user, *, host: Host | None = None, search: str = "", order: str = "tags_text") -> QuerySet:
    """Return the images user may see: their teams' and the shared (unlabelled) ones."""
    qs = visible(Image, user).select_related("host", "team")
    if host is not None:
        qs = qs.filter(host=host)
    if search:
        qs = qs.filter(Q(tags_text__icontains=search) | Q(engine_id__startswith="sha256:" + search.lower()))
    return qs.order_by(order if order in ORDERINGS else "tags_text", "pk")


def get_image(user, ref: str, action: str = "view", host: Host | None = None) -> Image:
    return get_for_user(Image, user, ref, action, host=host)


def inspect_image(user, ref: str, host: Host | None = None) -> dict:
    img = get_image(user, ref, "view", host)
    with client.calling(img.host, f"inspecting image {img.display_name}"):
        return client.engine_client(img.host).api.inspect_image(img.engine_id)


def image_history(user, ref: str, host: Host | None = None) -> list[dict]:
    img = get_image(user, ref, "view", host)
    with client.calling(img.host, f"reading the history of image {img.display_name}"):
        return client.engine_client(img.host).api.history(img.engine_id)


def remove_image(user, ref: str, force: bool = False, host: Host | None = None) -> None:
    """Remove a tag, or the image when ref is its id (operators of its team; shared images: site admins)."""
    img = get_for_user(Image, user, ref, "operate", host=host, audit="image.remove")
    # A tag removes just that tag (docker rmi name:tag); an id removes the image.
    target = normalize_ref(ref) if normalize_ref(ref) in img.tags else img.engine_id
    try:
        with client.calling(img.host, f"removing image {target}"):
            client.engine_client(img.host).api.remove_image(target, force=force)
    except EngineError as e:
        record("image.remove", actor=user, obj=img, result="failed", message=e.message)
        raise
    record("image.remove", actor=user, obj=img, message=target)
    sync_images(img.host)


def tag_image(user, ref: str, repo: str, tag: str = "latest", host: Host | None = None) -> Image:
    """Add repo:tag to the image."""
    img = get_for_user(Image, user, ref, "operate", host=host, audit="image.tag")
    if not repo or any(c.isspace() for c in repo) or (tag and any(c.isspace() or c in "/:" for c in tag)):
        raise ValidationError({"repo": [f"{repo}:{tag} is not a valid image name"]})
    try:
        with client.calling(img.host, f"tagging image {img.display_name}"):
            client.engine_client(img.host).api.tag(img.engine_id, repo, tag or "latest")
    except EngineError as e:
        record("image.tag", actor=user, obj=img, result="failed", message=e.message)
        raise
    record("image.tag", actor=user, obj=img, message=f"{repo}:{tag or 'latest'}")
    sync_images(img.host)
    return Image.objects.get(pk=img.pk)


def prune_images(user, team_slug: str = "", host: Host | None = None) -> dict:
    """Remove dangling images: a team's (its admins, by label) or all of them (site admins, no team)."""
    team = team_for_user(user, team_slug, "admin")
    host = host or Host.default()
    filters = {"dangling": True}
    if team:
        filters["label"] = [f"{TEAM_LABEL}={team.slug}"]
    try:
        with client.calling(host, "pruning images"):
            result = client.engine_client(host).api.prune_images(filters=filters)
    except EngineError as e:
        record("image.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
               result="failed", message=e.message)
        raise
    record("image.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
           message=f"{len(result.get('ImagesDeleted') or [])} deleted, {result.get('SpaceReclaimed', 0)} bytes")
    sync_images(host)
    return result


def pull_image(user, image: str, team_slug: str = "", host_name: str = ""):
    """Queue a Job that pulls image onto the host (operators of team_slug; the image is shared once pulled)."""
    from dockweb.core.jobs import create_job, enqueue
    from dockweb.images import tasks

    image = (image or "").strip()
    if not image or any(c.isspace() for c in image):
        raise ValidationError({"image": ["give an image to pull, for example busybox:1.36"]})
    team = team_for_user(user, team_slug, "operate")
    host = get_for_user(Host, user, host_name, "view") if host_name else Host.default()
    job = create_job(user, "image.pull", host=host, team=team, target=normalize_ref(image), params={"image": image})
    return enqueue(job, tasks.pull_image)


def run_pull(job) -> str:
    """The pull task's work: stream the engine's progress into the job (log and bar), then sync the host's images."""
    from dockweb.core.jobs import append_log

    team_for_user(job.user, job.team.slug if job.team else "", "operate")  # the role may have changed since
    image = job.params["image"]
    host = job.host
    layers: dict[str, tuple[int, int]] = {}
    statuses: dict[str, str] = {}
    shown = 0.0
    with client.calling(host, f"pulling {image}"):
        for item in client.engine_client(host).api.pull(image, stream=True, decode=True):
            if item.get("error"):
                raise EngineError(item["error"])
            status, layer = item.get("status", ""), item.get("id", "")
            # One log line per step of a layer ("Downloading", "Pull complete"), not one per progress tick.
            if status and statuses.get(layer) != status:
                statuses[layer] = status
                append_log(job, f"{layer}: {status}" if layer else status)
            detail = item.get("progressDetail") or {}
            if layer and detail.get("total"):
                # Download and extraction both count: a layer is done when extracted.
                weight = 0.5 if status.startswith("Extract") else 0.0
                current = detail.get("current", 0) / detail["total"]
                layers[layer] = (weight + current * 0.5, 1)
            elif layer and status in ("Pull complete", "Already exists"):
                layers[layer] = (1, 1)
            if layers and time.monotonic() - shown >= PROGRESS_EVERY:
                shown = time.monotonic()
                job.set_progress(sum(c for c, _ in layers.values()) / len(layers) * 0.99, status)
    sync_images(host)
    return f"pulled {normalize_ref(image)}"


# --- build ------------------------------------------------------------------------------------------------------

PROGRESS_EVERY = 0.25   # seconds between progress saves of a pull (each save is a row write and a message)
LOG_EVERY = 0.1         # seconds a build's output lines wait to be saved together
_STEP = re.compile(r"^Step (\d+)/(\d+) :")


def build_image(user, *, tag: str, team_slug: str = "", host_name: str = "", context: bytes | BinaryIO | None = None,
                dockerfile_text: str = "", dockerfile: str = "Dockerfile", buildargs: dict | None = None,
                nocache: bool = False):
    """Queue a Job that builds an image from an uploaded context tar, or from Dockerfile text alone."""
    from dockweb.core.jobs import create_job, enqueue
    from dockweb.images import tasks

    tag = (tag or "").strip()
    if not tag or any(c.isspace() for c in tag):
        raise ValidationError({"tag": ["name the image to build, for example myapp:1.0"]})
    if not context and not dockerfile_text.strip():
        raise ValidationError({"context": ["upload a build context (tar) or write a Dockerfile"]})
    team = team_for_user(user, team_slug, "operate")
    host = get_for_user(Host, user, host_name, "view") if host_name else Host.default()
    if context is None:
        context = _dockerfile_tar(dockerfile_text)
        dockerfile = "Dockerfile"
    directory = Path(settings.BUILD_CONTEXT_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{uuid.uuid4().hex}.tar"
    if isinstance(context, bytes):
        path.write_bytes(context)
    else:
        with open(path, "wb") as out:   # an upload: copied in chunks, never whole in memory
            shutil.copyfileobj(context, out, 1 << 20)
    job = create_job(user, "image.build", host=host, team=team, target=normalize_ref(tag),
                     params={"tag": tag, "context": str(path), "dockerfile": dockerfile,
                             "buildargs": buildargs or {}, "nocache": bool(nocache)})
    return enqueue(job, tasks.build_image)


def _dockerfile_tar(text: str) -> bytes:
    data = text.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def run_build(job) -> str:
    """The build task's work: send the context, stream each output line into the job log, then sync images."""
    from dockweb.core.jobs import append_log

    team = job.team
    team_for_user(job.user, team.slug if team else "", "operate")  # the role may have changed since
    params, host = job.params, job.host
    labels = {TEAM_LABEL: team.slug} if team else None
    path = Path(params["context"])
    image_id, pending, flushed = "", [], time.monotonic()

    def flush() -> None:
        nonlocal pending, flushed
        if pending:
            append_log(job, "".join(pending))
        pending, flushed = [], time.monotonic()

    try:
        with client.calling(host, f"building {params['tag']}"), open(path, "rb") as context:
            stream = client.engine_client(host).api.build(
                fileobj=context, custom_context=True, tag=params["tag"], dockerfile=params.get("dockerfile"),
                buildargs=params.get("buildargs") or None, nocache=params.get("nocache", False), rm=True,
                labels=labels, decode=True)
            for item in stream:
                if item.get("error") or item.get("errorDetail"):
                    flush()
                    raise EngineError((item.get("errorDetail") or {}).get("message") or item.get("error"))
                text = item.get("stream") or ""
                if item.get("status"):
                    text += " ".join(str(item[k]) for k in ("id", "status") if item.get(k)) + "\n"
                if (item.get("aux") or {}).get("ID"):
                    image_id = item["aux"]["ID"]
                if text:
                    pending.append(text)
                    step = _STEP.match(text)
                    if step:
                        flush()
                        job.set_progress((int(step[1]) - 1) / int(step[2]), text.strip()[:300])
                if time.monotonic() - flushed >= LOG_EVERY:
                    flush()
        flush()
    finally:
        path.unlink(missing_ok=True)
    sync_images(host)
    return f"built {normalize_ref(params['tag'])}" + (f" ({image_id[:19]})" if image_id else "")


def normalize_ref(ref: str) -> str:
    from dockweb.images.models import normalize_tag

    return normalize_tag(ref)


def fields_from_summary(s: dict) -> dict:
    tags = [t for t in (s.get("RepoTags") or []) if t != "<none>:<none>"]
    return {"tags": tags, "tags_text": f" {' '.join(tags)} " if tags else "", "size": s.get("Size") or 0,
            "created": parse_engine_time(s.get("Created")), "labels": s.get("Labels") or {}}


def sync_images(host: Host) -> Drift:
    """Make the host's image rows match the engine's image list (images are few: always the whole list)."""
    started = timezone.now()
    with client.calling(host, "listing images"):
        summaries = client.engine_client(host).api.images(all=False)
    rows = {i.engine_id: i for i in Image.objects.filter(host=host)}
    teams = TeamCache()
    drift = Drift()
    for s in summaries:
        fields = fields_from_summary(s)
        row = rows.pop(s["Id"], None)
        fields["team_id"] = team_id_for(fields["labels"], row.team_id if row else None, teams)
        if row is None:
            Image.objects.update_or_create(host=host, engine_id=s["Id"], defaults={**fields, "synced_at": started})
            drift.added += 1
        elif any(getattr(row, k) != v for k, v in fields.items()):
            Image.objects.filter(pk=row.pk).update(**fields, synced_at=started)
            drift.updated += 1
    gone = [row.pk for row in rows.values() if row.synced_at < started]
    drift.removed = len(gone)
    Image.objects.filter(pk__in=gone).delete()
    return drift


def sync_image_event(host: Host, event: dict) -> None:
    try:
        sync_images(host)
    except EngineNotFound:
        pass


reconcile = sync_images
