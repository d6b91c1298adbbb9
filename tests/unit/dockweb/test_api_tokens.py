"""Personal API tokens: shown once, stored hashed, revocable, expiring; the schema is served at /api/schema/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dockweb.accounts.models import ApiToken, token_digest


@pytest.fixture
def user(make_user):
    return make_user("olga", teams={"red": "viewer"})


def get(raw: str, url: str = "/api/containers/"):
    return Client().get(url, HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_a_token_made_through_the_api_is_shown_once_and_stored_hashed(user):
    client = Client()
    client.force_login(user)
    response = client.post("/api/tokens/", {"name": "ci", "expires_in_days": 30}, content_type="application/json")
    assert response.status_code == 201
    raw = response.json()["token"]
    assert raw.startswith("dw_")
    token = ApiToken.objects.get(user=user)
    assert token.digest == token_digest(raw) and raw not in (token.digest, token.prefix)
    assert "token" not in client.get("/api/tokens/").json()["results"][0]
    assert get(raw).status_code == 200


def test_the_token_also_works_with_the_token_keyword_and_records_its_use(user):
    token, raw = ApiToken.issue(user, "ci")
    assert Client().get("/api/containers/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 200
    token.refresh_from_db()
    assert token.last_used is not None


def test_a_revoked_token_is_refused(user):
    token, raw = ApiToken.issue(user, "ci")
    client = Client()
    client.force_login(user)
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 200
    response = get(raw)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(user):
    token, raw = ApiToken.issue(user, "ci", expires_in_days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert get(raw).status_code == 401


def test_a_deactivated_users_token_is_refused(user):
    _, raw = ApiToken.issue(user, "ci")
    user.is_active = False
    user.save()
    assert get(raw).status_code == 401


def test_the_openapi_schema_is_served_at_a_fixed_url(db):
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/api/containers/", "/api/containers/{ref}/{action}/", "/api/images/pull/", "/api/volumes/",
                 "/api/jobs/{id}/", "/api/audit/", "/api/tokens/"):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
