"""Middleware that tells the audit log which address the current request came from."""

from __future__ import annotations

from dockweb.core.audit import source_address


class AuditSourceMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        # REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be unless a proxy rewrites it.
        token = source_address.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self.get_response(request)
        finally:
            source_address.reset(token)
