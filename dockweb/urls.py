"""URL routes of the control plane: pages, the REST API under /api/, the Django admin and a health check."""

from django.contrib import admin
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def health(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database is reachable, 503 with the reason otherwise (for probes and compose)."""
    try:
        connection.ensure_connection()
    except DatabaseError as e:
        return JsonResponse({"status": "error", "database": str(e)}, status=503)
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health, name="health"),
    path("api/", include("dockweb.api_urls")),
    path("accounts/", include("dockweb.accounts.urls")),
    path("containers/", include("dockweb.containers.urls")),
    path("images/", include("dockweb.images.urls")),
    path("volumes/", include("dockweb.volumes.urls")),
    path("backups/", include("dockweb.backups.urls")),
    path("networks/", include("dockweb.networks.urls")),
    path("hosts/", include("dockweb.hosts.urls")),
    path("", include("dockweb.core.urls")),
]
