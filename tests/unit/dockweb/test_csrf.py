"""CSRF is enforced on session POSTs (pages and the REST API); token-authenticated API calls need none."""

from __future__ import annotations

import pytest
from django.test import Client

from dockweb.containers import services
from dockweb.hosts.models import Host


@pytest.fixture
def operator(make_user, fake_engine):
    user = make_user("olga", teams={"red": "operator"})
    fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    return user


def logged_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_token(client: Client) -> str:
    client.get("/containers/")  # a page with a form sets the cookie
    return client.cookies["csrftoken"].value


def test_a_page_post_without_the_csrf_token_is_refused(operator, fake_engine):
    response = logged_in(operator).post("/containers/web/stop/")
    assert response.status_code == 403
    assert ("stop", fake_engine._find("web")["Id"]) not in fake_engine.calls


def test_a_forged_page_post_with_a_wrong_token_is_refused(operator, fake_engine):
    client = logged_in(operator)
    csrf_token(client)
    response = client.post("/containers/web/stop/", {"csrfmiddlewaretoken": "x" * 64})
    assert response.status_code == 403


def test_a_page_post_with_the_csrf_token_goes_through(operator, fake_engine):
    client = logged_in(operator)
    response = client.post("/containers/web/stop/", {"csrfmiddlewaretoken": csrf_token(client)})
    assert response.status_code == 302
    assert ("stop", fake_engine._find("web")["Id"]) in fake_engine.calls


def test_a_session_api_post_without_the_csrf_header_is_refused(operator):
    response = logged_in(operator).post("/api/containers/web/stop/", {}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_session_api_post_with_the_csrf_header_goes_through(operator):
    client = logged_in(operator)
    response = client.post("/api/containers/web/stop/", {}, content_type="application/json",
                           HTTP_X_CSRFTOKEN=csrf_token(client))
    assert response.status_code == 200


def test_a_token_api_post_needs_no_csrf_token(operator):
    from dockweb.accounts.models import ApiToken

    _, raw = ApiToken.issue(operator, "ci")
    response = Client(enforce_csrf_checks=True).post("/api/containers/web/stop/", {}, content_type="application/json",
                                                     HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200


def test_the_login_form_needs_the_csrf_token(make_user):
    make_user("olga", password="pw-olga-123")
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "olga",
                                                                          "password": "pw-olga-123"})
    assert response.status_code == 403
