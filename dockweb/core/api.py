"""REST adapters of core: jobs, audit log, hosts; the error mapping every REST view shares."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dockweb.accounts.permissions import get_for_user
from dockweb.core import jobs
from dockweb.core.audit import can_read_audit, visible_entries
from dockweb.core.errors import EngineError
from dockweb.core.models import AuditEntry, Job
from dockweb.hosts import services as hosts
from dockweb.hosts.models import Host


def exception_handler(exc, context):
    """DRF's handler, plus: engine errors keep their status and message; Django ValidationError is a 400."""
    if isinstance(exc, EngineError):
        return Response({"detail": exc.message}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        body = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "You do not have permission to do this."},
                        status=status.HTTP_403_FORBIDDEN)
    return drf_exception_handler(exc, context)


def host_param(request) -> Host | None:
    """The ?host=<name> narrowing of list and lookup endpoints (a host the user may see)."""
    name = request.query_params.get("host")
    return get_for_user(Host, request.user, name, "view") if name else None


class JobSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "target", "state", "progress", "message", "error", "log", "host", "team", "user",
                  "created", "started", "finished"]


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Host
        fields = ["id", "name", "engine_url", "queue", "health", "health_message", "checked_at", "engine_version"]


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "time", "actor_name", "team_slug", "action", "object_type", "object_id", "object_name",
                  "host_name", "result", "message", "source_ip"]


class JobList(generics.ListAPIView):
    serializer_class = JobSerializer

    @extend_schema(parameters=[OpenApiParameter("state", str), OpenApiParameter("kind", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = jobs.list_jobs(self.request.user)
        for field in ("state", "kind"):
            if self.request.query_params.get(field):
                qs = qs.filter(**{field: self.request.query_params[field]})
        return qs


class JobDetail(generics.RetrieveAPIView):
    serializer_class = JobSerializer

    def get_object(self):
        return jobs.get_job(self.request.user, self.kwargs["pk"])


class HostList(generics.ListAPIView):
    serializer_class = HostSerializer

    def get_queryset(self):
        return hosts.list_hosts(self.request.user)


class HostDetail(generics.RetrieveAPIView):
    serializer_class = HostSerializer

    def get_object(self):
        return get_for_user(Host, self.request.user, self.kwargs["name"], "view")


class AuditList(generics.ListAPIView):
    """The audit log: site admins read all of it, team admins their teams' entries."""

    serializer_class = AuditEntrySerializer
    FILTERS = ("action", "result", "object_type", "team_slug", "actor_name", "host_name")

    @extend_schema(parameters=[OpenApiParameter(f, str) for f in FILTERS])
    def get(self, request, *args, **kwargs):
        if not can_read_audit(request.user):
            raise DjangoPermissionDenied("The audit log is for site admins and team admins")
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = visible_entries(self.request.user)
        for field in self.FILTERS:
            if self.request.query_params.get(field):
                qs = qs.filter(**{field: self.request.query_params[field]})
        return qs
