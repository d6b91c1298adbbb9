"""The build page: a Dockerfile typed in the editor or an uploaded context starts a build job; bad input is a
field error and starts nothing; a viewer cannot build."""

from __future__ import annotations

import io
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, TestCase, override_settings

from dockweb.core.models import Job
from dockweb.hosts.models import Host


@pytest.fixture
def users(make_user, fake_engine, monkeypatch, tmp_path):
    from dockweb.images import tasks

    sent = []
    monkeypatch.setattr(tasks.build_image, "apply_async", lambda args, queue=None: sent.append(args) or _Result())
    Host.default()
    with override_settings(BUILD_CONTEXT_DIR=tmp_path / "contexts"):
        yield {"olga": make_user("olga", teams={"red": "operator"}), "vera": make_user("vera", teams={"red": "viewer"}),
               "sent": sent}


class _Result:
    id = "task-1"


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_a_typed_dockerfile_starts_a_build_job(users):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = _client(users["olga"]).post("/images/build/", {
            "tag": "red/app:1", "team": "red", "dockerfile_text": "FROM busybox\nRUN true\n",
            "buildargs": "A=1\n# comment\nB=two words\n"})
    job = Job.objects.get(kind="image.build")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.team.slug == "red" and job.params["buildargs"] == {"A": "1", "B": "two words"}
    assert _members(job.params["context"]) == {"Dockerfile": b"FROM busybox\nRUN true\n"}
    assert users["sent"] == [[job.pk]]


def test_an_uploaded_context_is_kept_whole(users):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("build/Dockerfile.web", b"FROM busybox\nCOPY app.txt /\n"), ("app.txt", b"x" * 5000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    upload = SimpleUploadedFile("ctx.tar", buf.getvalue(), content_type="application/x-tar")
    response = _client(users["olga"]).post("/images/build/", {
        "tag": "red/web:2", "team": "red", "dockerfile": "build/Dockerfile.web", "context": upload,
        "dockerfile_text": "ignored when a context is uploaded"})
    job = Job.objects.get(kind="image.build")
    assert response.status_code == 302 and job.params["dockerfile"] == "build/Dockerfile.web"
    assert _members(job.params["context"])["app.txt"] == b"x" * 5000


@pytest.mark.parametrize("fields,bad", [
    ({"tag": "", "dockerfile_text": "FROM busybox"}, "tag"),
    ({"tag": "has space", "dockerfile_text": "FROM busybox"}, "tag"),
    ({"tag": "ok:1", "dockerfile_text": "   "}, "context"),
    ({"tag": "ok:1", "dockerfile_text": "FROM busybox", "buildargs": "NOEQUALS"}, "buildargs"),
])
def test_bad_input_is_a_field_error_and_starts_nothing(users, fields, bad):
    response = _client(users["olga"]).post("/images/build/", {"team": "red", **fields})
    assert response.status_code == 400 and bad in response.context["errors"]
    assert not Job.objects.exists()


def test_a_viewer_cannot_build(users):
    response = _client(users["vera"]).post("/images/build/", {"tag": "red/x:1", "team": "red",
                                                              "dockerfile_text": "FROM busybox"})
    assert response.status_code == 403 and not Job.objects.exists()
