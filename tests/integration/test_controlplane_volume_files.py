"""The volume file browser against a real engine: list, view, download; links not followed; other teams get 404."""

from __future__ import annotations

import pytest

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.http import Http404  # noqa: E402
from django.test import Client  # noqa: E402

from dockweb.accounts.models import Membership, Team  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.errors import EngineInvalid  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.volumes import services  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def world(engine):
    Host.objects.create(name="local", engine_url=engine.base_url)
    User = get_user_model()
    red = Team.objects.create(name="Red", slug="red")
    vera = User.objects.create_user("vera", password="pw-vera-1")
    Membership.objects.create(user=vera, team=red, role="viewer")
    bob = User.objects.create_user("bob", password="pw-bob-1")
    Membership.objects.create(user=bob, team=Team.objects.create(name="Blue", slug="blue"), role="admin")
    admin = User.objects.create_superuser("root", password="pw-root-1")
    services.create_volume(admin, "red-files", "red")
    engine.docker("run", "--rm", "-v", "red-files:/data", "busybox", "sh", "-c",
                  "mkdir -p /data/conf && printf 'port=5432\\n<b>bold</b>\\n' > /data/conf/app.ini && "
                  "head -c 5000 /dev/zero > /data/blob.bin && ln -s /etc/passwd /data/passwd-link")
    try:
        yield vera, bob
    finally:
        client = engine.client()
        for v in client.volumes.list():
            v.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_a_viewer_lists_folders_and_files(world):
    vera, _ = world
    root = services.list_files(vera, "red-files", "/")
    kinds = {e["Name"]: e["Type"] for e in root["Entries"]}
    assert kinds == {"conf": "dir", "blob.bin": "file", "passwd-link": "symlink"}
    assert services.list_files(vera, "red-files", "/conf")["Entries"][0]["Size"] == 22


def test_a_file_is_read_and_a_link_out_of_the_volume_is_not(world):
    vera, _ = world
    response, size = services.open_file(vera, "red-files", "/conf/app.ini")
    try:
        assert size == 22 and response.content == b"port=5432\n<b>bold</b>\n"
    finally:
        response.close()
    with pytest.raises(EngineInvalid, match="symbolic link"):
        services.open_file(vera, "red-files", "/passwd-link")


def test_another_team_cannot_see_the_files(world):
    _, bob = world
    with pytest.raises(Http404):
        services.list_files(bob, "red-files", "/")
    with pytest.raises(Http404):
        services.open_file(bob, "red-files", "/conf/app.ini")


def test_the_pages_show_escaped_text_and_download_whole_files(world):
    web = Client()
    assert web.login(username="vera", password="pw-vera-1")
    listing = web.get("/volumes/red-files/files/?path=/conf", HTTP_HX_REQUEST="true")
    assert listing.status_code == 200 and b"app.ini" in listing.content
    page = web.get("/volumes/red-files/file/?path=/conf/app.ini")
    assert page.status_code == 200
    assert b"&lt;b&gt;bold&lt;/b&gt;" in page.content and b"<b>bold</b>" not in page.content
    download = web.get("/volumes/red-files/file/?path=/blob.bin&download=1")
    assert download.status_code == 200 and download["Content-Length"] == "5000"
    assert b"".join(download.streaming_content) == b"\0" * 5000
    other = Client()
    assert other.login(username="bob", password="pw-bob-1")
    assert other.get("/volumes/red-files/files/?path=/").status_code == 404
    assert other.get("/volumes/red-files/file/?path=/blob.bin&download=1").status_code == 404
