"""Registry credentials: decode X-Registry-Auth / X-Registry-Config, parse WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from engine.errors import EngineError, InvalidParameter
from engine.registry.config import normalize_server_address


class Unauthorized(EngineError):
    """The registry refused the credentials (or wants some): the API answers 401 with this message."""


@dataclass(frozen=True)
class AuthConfig:
    """One registry login as the clients send it."""

    username: str = ""
    password: str = ""
    identitytoken: str = ""
    registrytoken: str = ""
    serveraddress: str = ""

    @property
    def has_credentials(self) -> bool:
        return bool(self.username and self.password) or bool(self.identitytoken or self.registrytoken)

    @classmethod
    def from_dict(cls, doc: dict | None) -> "AuthConfig":
        """Build from the JSON the clients send (unknown keys such as email are ignored)."""
        doc = doc or {}
        if not isinstance(doc, dict):
            raise InvalidParameter("invalid registry auth: expected a JSON object")

        def text(key: str) -> str:
            value = doc.get(key)
            return value if isinstance(value, str) else ""

        username, password = text("username"), text("password")
        if not username and text("auth"):
            # The CLI's config.json form: base64 of user:password.
            try:
                username, _, password = base64.b64decode(text("auth")).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidParameter("invalid registry auth: bad base64 in auth") from None
        return cls(username, password, text("identitytoken"), text("registrytoken"), text("serveraddress"))


def _b64json(value: str, what: str) -> object:
    value = value.strip()
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return json.loads(raw) if raw.strip() else {}
    except (binascii.Error, ValueError):
        raise InvalidParameter(f"invalid {what} header: expected base64 of a JSON object") from None


def decode_auth_header(value: str | None) -> dict | None:
    """Decode X-Registry-Auth (URL-safe base64 JSON, padding and alphabet lenient); None when absent or empty."""
    if not value:
        return None
    doc = _b64json(value, "X-Registry-Auth")
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: expected a JSON object")
    return doc or None


def decode_config_header(value: str | None) -> dict[str, dict]:
    """Decode X-Registry-Config (a map of registry address to auth config) as the builder receives it."""
    if not value:
        return {}
    doc = _b64json(value, "X-Registry-Config")
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid X-Registry-Config header: expected a JSON object")
    return {k: v for k, v in doc.items() if isinstance(v, dict)}


def auth_for(configs: dict[str, dict], domain: str) -> dict | None:
    """Pick the auth config for a reference domain from an X-Registry-Config map (keys like host:port or the Hub URL)."""
    for key, value in configs.items():
        if normalize_server_address(key) == domain:
            return value
    return None


@dataclass
class Challenge:
    scheme: str                      # "bearer" or "basic", lower case
    params: dict[str, str] = field(default_factory=dict)


_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value: `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z]+)\s*", rest)
        if not m:
            break
        challenge = Challenge(m.group(1).lower())
        rest = rest[m.end():]
        while True:
            p = _PARAM_RE.match(rest)
            if not p:
                break  # the next scheme name: it has no '=' after it
            value = p.group(2) if p.group(2) is not None else p.group(3)
            challenge.params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[p.end():]
        out.append(challenge)
        rest = rest.lstrip(", ")
    return out
