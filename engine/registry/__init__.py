"""The registry facade of the engine (engine.registry): pull, push and login against registries speaking the v2 API."""

from __future__ import annotations

from typing import Callable, Generator

from engine.config import EngineConfig
from engine.images import reference
from engine.images.store import Image, ImageStore
from engine.registry.auth import AuthConfig, Unauthorized, auth_for, decode_auth_header, decode_config_header
from engine.registry.client import RegistryClient, RegistryError, Unreachable, VerificationFailed
from engine.registry.config import RegistryHosts, normalize_server_address
from engine.registry.pull import pull_all_tags_messages, pull_messages
from engine.registry.push import push_messages, push_targets

__all__ = ["Registry", "Unauthorized", "RegistryError", "Unreachable", "VerificationFailed", "auth_for",
           "decode_auth_header", "decode_config_header"]


def _drive(messages: Generator[dict, None, object], progress: Callable[[dict], None]) -> object:
    """Run a message generator to its end, handing every message to progress; return its result."""
    while True:
        try:
            progress(next(messages))
        except StopIteration as stop:
            return stop.value


class Registry:
    """Pull, push and log in for one engine: its image store and its insecure-registry settings."""

    def __init__(self, config: EngineConfig, images: ImageStore) -> None:
        self.images = images
        self.hosts = RegistryHosts(tuple(config.insecure_registries))

    def pull_stream(self, ref: str, auth: dict | None = None, platform: str | None = None,
                    all_tags: bool = False) -> Generator[dict, None, Image | list[Image]]:
        """Pull ref (name[:tag][@digest], tag latest by default), yielding Docker's JSON messages.

        With all_tags, ref is a bare repository name and every tag the registry lists is pulled (docker pull -a).
        """
        if all_tags:
            return pull_all_tags_messages(self.images, self.hosts, reference.parse(ref), auth, platform)
        return pull_messages(self.images, self.hosts, reference.parse_tagged(ref), auth, platform)

    def pull(self, ref: str, auth: dict | None = None, platform: str | None = None,
             progress: Callable[[dict], None] = lambda m: None) -> Image:
        """Pull ref and return the stored image; progress gets each of Docker's JSON stream messages."""
        return _drive(self.pull_stream(ref, auth, platform), progress)  # type: ignore[return-value]

    def push_stream(self, ref: str, auth: dict | None = None) -> Generator[dict, None, str]:
        """Push name:tag (or every tag of name), yielding Docker's JSON messages; NotFound before any message."""
        named = reference.parse(ref)
        targets = push_targets(self.images, named)
        return push_messages(self.images, self.hosts, named, auth, targets)

    def push(self, ref: str, auth: dict | None = None, progress: Callable[[dict], None] = lambda m: None) -> str:
        """Push ref and return the (last) manifest digest."""
        return _drive(self.push_stream(ref, auth), progress)  # type: ignore[return-value]

    def login(self, auth: dict) -> str:
        """Check credentials against the registry at auth["serveraddress"]; return "Login Succeeded"."""
        config = AuthConfig.from_dict(auth)
        domain = normalize_server_address(config.serveraddress)
        RegistryClient(self.hosts, domain, config).check_login()
        return "Login Succeeded"
