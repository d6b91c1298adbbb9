"""Request helpers parse query parameters and bodies the way dockerd does: lenient booleans, both filter encodings."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from engine.api.server import json_response
from tests.unit.engine.test_api_harness import request, running_server


def parse(engine, req):
    what = req.arg("what")
    if what == "flag":
        return json_response({"value": req.flag("v"), "default_true": req.flag("absent", default=True)})
    if what == "int":
        return json_response({"value": req.int_arg("t", default=-1)})
    if what == "filters":
        return json_response(req.filters())
    if what == "args":
        return json_response({"last": req.arg("t"), "all": req.args("t"), "missing": req.arg("nope", "dflt")})
    if what == "json":
        return json_response({"body": req.json()})
    raise AssertionError(what)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("args"), [("GET", r"/p", parse), ("POST", r"/p", parse)]) as srv:
        yield srv


def call(server, query: str, method: str = "GET", body: bytes | None = None):
    status, _, data = request(server, method, f"/p?{query}", body)
    return status, json.loads(data)


@pytest.mark.parametrize("raw", ["", "0", "no", "false", "FALSE", "None", " False "])
def test_dockerd_false_spellings_are_false(server, raw):
    assert call(server, "what=flag&v=" + urllib.parse.quote(raw))[1]["value"] is False


@pytest.mark.parametrize("raw", ["1", "true", "True", "yes", "anything"])
def test_anything_else_is_true(server, raw):
    assert call(server, f"what=flag&v={raw}")[1]["value"] is True


def test_absent_flag_takes_its_default(server):
    doc = call(server, "what=flag")[1]
    assert doc == {"value": False, "default_true": True}


def test_int_arg_parses_and_defaults(server):
    assert call(server, "what=int&t=3")[1] == {"value": 3}
    assert call(server, "what=int")[1] == {"value": -1}
    assert call(server, "what=int&t=")[1] == {"value": -1}


def test_bad_int_arg_is_a_400_naming_the_parameter(server):
    status, doc = call(server, "what=int&t=soon")
    assert status == 400
    assert doc["message"] == "invalid value for parameter t: 'soon' is not an integer"


def test_repeated_args_and_last_value(server):
    assert call(server, "what=args&t=a&t=repo/b:2")[1] == {"last": "repo/b:2", "all": ["a", "repo/b:2"],
                                                            "missing": "dflt"}


def test_cli_filters_map_of_sets(server):
    f = json.dumps({"label": {"a=b": True}, "status": {"exited": True}})
    assert call(server, "what=filters&filters=" + urllib.parse.quote(f))[1] == {"label": ["a=b"],
                                                                                  "status": ["exited"]}


def test_docker_py_filters_map_of_lists(server):
    f = json.dumps({"label": ["x=y"], "status": ["running", "exited"], "dangling": [True]})
    assert call(server, "what=filters&filters=" + urllib.parse.quote(f))[1] == {
        "label": ["x=y"], "status": ["running", "exited"], "dangling": ["true"]}


def test_empty_filters_are_accepted(server):
    assert call(server, "what=filters&filters=")[1] == {}
    assert call(server, "what=filters")[1] == {}


def test_bad_filters_json_is_a_400(server):
    status, doc = call(server, "what=filters&filters=" + urllib.parse.quote("{not json"))
    assert status == 400
    assert doc["message"].startswith("invalid filter")


def test_json_body_and_empty_body(server):
    assert call(server, "what=json", "POST", b'{"Image":"busybox"}')[1] == {"body": {"Image": "busybox"}}
    assert call(server, "what=json", "POST", b"")[1] == {"body": {}}


def test_bad_json_body_is_a_400(server):
    status, doc = call(server, "what=json", "POST", b'{"Image":')
    assert status == 400
    assert doc["message"].startswith("invalid JSON in request body")
