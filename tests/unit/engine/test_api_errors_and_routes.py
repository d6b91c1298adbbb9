"""One table maps engine error categories to statuses; the route table matches in order and survives missing modules."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from engine import errors
from engine.api.errors import error_response, status_for
from engine.api.routes import Router, load_routes


@pytest.mark.parametrize("exc, status", [
    (errors.NoSuchContainer("x"), 404),
    (errors.NoSuchImage("busybox:latest"), 404),
    (errors.InvalidParameter("bad"), 400),
    (errors.Conflict("busy"), 409),
    (errors.ContainerNotRunning("abc"), 409),
    (errors.NotModified(), 304),
    (errors.Forbidden("ro"), 403),
    (errors.Unavailable("later"), 503),
    (errors.NotImplementedYet("soon"), 501),
    (errors.SystemFailure("disk"), 500),
    (errors.ContainerStartError("exec failed"), 400),  # dockerd: errdefs.InvalidParameter
    (KeyError("x"), 500),
])
def test_status_table(exc, status):
    assert status_for(exc) == status


def test_error_body_is_the_message_as_json():
    resp = error_response(errors.NoSuchImage("busybox:latest"))
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert json.loads(resp.body) == {"message": "No such image: busybox:latest"}


def test_not_modified_has_no_body():
    resp = error_response(errors.NotModified("already stopped"))
    assert (resp.status, resp.body) == (304, b"")


def test_unexpected_error_is_logged_with_its_traceback(caplog):
    try:
        {}["missing"]
    except KeyError as e:
        with caplog.at_level(logging.ERROR, logger="engine.api"):
            resp = error_response(e)
    assert resp.status == 500
    assert json.loads(resp.body)["message"] == "internal error: KeyError: 'missing'"
    assert caplog.records and caplog.records[0].exc_info is not None


def h1(engine, req): ...
def h2(engine, req): ...
def h3(engine, req, ref): ...


def test_first_registered_match_wins():
    router = Router([("GET", r"/containers/json", h1), ("GET", r"/containers/(?P<ref>[^/]+)", h3),
                     ("GET", r"/containers/json", h2)])
    assert router.match("GET", "/containers/json") == (h1, {})
    assert router.match("GET", "/containers/web") == (h3, {"ref": "web"})


def test_routes_match_the_whole_path():
    router = Router([("GET", r"/info", h1)])
    assert router.match("GET", "/info/extra") is None
    assert router.match("GET", "/xinfo") is None
    assert router.match("POST", "/info") is None
    assert router.methods_for("/info") == ["GET"]


def test_missing_handler_modules_are_logged_and_skipped(caplog):
    with caplog.at_level(logging.INFO, logger="engine.api"):
        router = load_routes(("system", "no_such_module_for_test"))
    assert router.match("GET", "/_ping") is not None
    assert any("no_such_module_for_test is not present" in r.getMessage() for r in caplog.records)


def test_broken_handler_module_does_not_break_the_others(caplog, monkeypatch):
    name = "engine.api.handlers.broken_for_test"

    import importlib
    real = importlib.import_module

    def fake_import(qualified, *a, **kw):
        if qualified == name:
            raise SyntaxError("invalid syntax (broken_for_test.py, line 3)")
        return real(qualified, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with caplog.at_level(logging.ERROR, logger="engine.api"):
        router = load_routes(("broken_for_test", "system"))
    assert router.match("GET", "/version") is not None
    assert any("broken_for_test cannot be imported" in r.getMessage() for r in caplog.records)
    assert name not in sys.modules
