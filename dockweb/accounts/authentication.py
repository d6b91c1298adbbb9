"""REST authentication with personal API tokens: `Authorization: Bearer dw_...` (or `Token dw_...`)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from dockweb.accounts.models import ApiToken, token_digest
from dockweb.core.audit import record


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None  # not ours: let session authentication try
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: give `Bearer <token>`")
        raw = header[1].decode(errors="replace")
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
        if token is None or not token.is_usable:
            record("auth.token_failed", object_type="token", object_name=raw[:10], result="denied",
                   actor_name=token.user.get_username() if token else "",
                   message="unknown token" if token is None else "revoked or expired token",
                   source_ip=request.META.get("REMOTE_ADDR"))
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token")
        token.touch()
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="dockweb"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describe the token scheme in the OpenAPI schema."""

    target_class = "dockweb.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (dw_…) from the tokens page"}
