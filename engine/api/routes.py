"""The route table: collect every handler module's ROUTES and match a request's method and path to a handler."""

from __future__ import annotations

import importlib
import logging
import re
from typing import Callable, Iterable

log = logging.getLogger("engine.api")

# Handler modules in registration order; the first matching route wins. system comes last so that a real
# networks module, once written, takes over the predefined-network routes system.py answers for now.
HANDLER_MODULES = ("containers", "exec", "images", "build", "volumes", "networks", "archive", "backups", "system")

Route = tuple[str, "re.Pattern[str]", Callable]


class Router:
    """Match (method, path) against compiled routes, in registration order, with fullmatch."""

    def __init__(self, routes: Iterable[tuple]) -> None:
        self.routes: list[Route] = []
        self._by_method: dict[str, list[tuple["re.Pattern[str]", Callable]]] = {}
        for method, pattern, handler in routes:
            compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            self.routes.append((method.upper(), compiled, handler))
            self._by_method.setdefault(method.upper(), []).append((compiled, handler))

    def match(self, method: str, path: str) -> tuple[Callable, dict[str, str]] | None:
        """Return the handler and its path parameters, or None when no route of this method matches."""
        for pattern, handler in self._by_method.get(method, ()):
            m = pattern.fullmatch(path)
            if m:
                return handler, m.groupdict()
        return None

    def methods_for(self, path: str) -> list[str]:
        """List the methods some route accepts for path (for 405 answers)."""
        return [method for method, routes in self._by_method.items()
                if any(pattern.fullmatch(path) for pattern, _ in routes)]


def load_routes(modules: Iterable[str] = HANDLER_MODULES) -> Router:
    """Import the handler modules that exist and build a Router from their ROUTES."""
    collected: list[tuple] = []
    for name in modules:
        qualified = f"engine.api.handlers.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as e:
            if e.name == qualified:
                log.info("API handler module %s is not present: its routes answer 404", qualified)
                continue
            log.error("API handler module %s cannot be imported: its routes answer 404", qualified, exc_info=e)
            continue
        except Exception as e:
            # A module being written can have a syntax error: serve the rest of the API meanwhile.
            log.error("API handler module %s cannot be imported: its routes answer 404", qualified, exc_info=e)
            continue
        routes = getattr(module, "ROUTES", None)
        if routes is None:
            log.error("API handler module %s has no ROUTES", qualified)
            continue
        collected.extend(routes)
    return Router(collected)
