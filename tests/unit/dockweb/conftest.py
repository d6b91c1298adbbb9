"""Fixtures of the control-plane unit tests: Django on a test database, rolled back per test; a fake engine."""

from __future__ import annotations

import pytest

from tests.unit.dockweb import support

support.setup_django()


@pytest.fixture
def db():
    """Give the test the database inside a transaction that is rolled back afterwards."""
    with support.rolled_back():
        yield


@pytest.fixture
def fake_engine(monkeypatch):
    """Answer every engine_client(host) with one FakeClient; return its FakeAPI."""
    from dockweb.core import client

    fake = support.FakeClient()
    monkeypatch.setattr(client, "engine_client", lambda host: fake)
    return fake.api


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str, *, superuser: bool = False, teams: dict | None = None, password: str | None = None):
        from dockweb.accounts.models import Membership, Team

        User = get_user_model()
        user = User.objects.create_user(username=username, password=password, is_superuser=superuser,
                                        is_staff=superuser)
        for slug, role in (teams or {}).items():
            team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": slug.capitalize()})
            Membership.objects.create(user=user, team=team, role=role)
        return user

    return make
