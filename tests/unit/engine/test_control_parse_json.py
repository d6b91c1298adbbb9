"""parse_json (json's C scanner alone) reads what json.loads reads and rejects what it rejects."""

import base64
import json

import pytest

from engine.runtime import control


@pytest.mark.parametrize("text", [
    '{"op":"start","n":1,"f":1.5,"t":true,"z":null,"l":[1,"\\u00e9"]}',
    '{"a": {"b": [ ]} }\n',
    '  [1, 2]  ',
    '"just a string"',
])
def test_parse_json_agrees_with_json_loads(text):
    assert control.parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a": 1} trailing', '{"a": ', '', 'nan?'])
def test_parse_json_rejects_what_json_loads_rejects(text):
    with pytest.raises(ValueError):
        control.parse_json(text.encode())


def test_decode_attach_rebuilds_what_the_launcher_was_sent():
    spec = {"stdin": True, "stdout": True, "stderr": False, "framed": False,
            "pending": base64.b64encode(b"early").decode(), "detach_keys": base64.b64encode(b"\x01").decode()}
    assert control.decode_attach(7, spec) == control.Attach(7, True, True, False, False, b"early", b"\x01")


def test_decode_attach_without_detach_keys_uses_dockers_and_empty_turns_them_off():
    assert control.decode_attach(3, {}).detach_keys == control.DEFAULT_DETACH_KEYS
    assert control.decode_attach(3, {"detach_keys": ""}).detach_keys == b""
