"""REST adapters for containers: list/run, detail/remove, actions, logs, inspect, bulk jobs, prune."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.containers import services
from dockweb.containers.models import Container
from dockweb.containers.runspec import parse_run_input
from dockweb.core.api import JobSerializer, host_param


class ContainerSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="engine_id", read_only=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.CharField(source="status_text", read_only=True)

    class Meta:
        model = Container
        fields = ["id", "name", "host", "team", "image", "image_id", "command", "state", "status", "exit_code",
                  "labels", "ports", "created", "started_at", "finished_at"]


class RunSerializer(serializers.Serializer):
    """What POST /api/containers/ takes; list fields also accept text with one item per line."""

    image = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)
    command = serializers.JSONField(required=False, help_text='a list, or text split like a shell: "sh -c \'x\'"')
    env = serializers.JSONField(required=False, help_text='{"KEY": "value"} or ["KEY=value"]')
    ports = serializers.JSONField(required=False, help_text='["8080:80", "127.0.0.1:53:53/udp"]')
    volumes = serializers.JSONField(required=False, help_text='["data:/var/lib/data", "cfg:/etc/app:ro"]')
    restart_policy = serializers.CharField(required=False, help_text="no, always, unless-stopped, on-failure[:N]")
    memory = serializers.CharField(required=False, allow_blank=True, help_text="512m, 1g or bytes")
    cpus = serializers.CharField(required=False, allow_blank=True, help_text="0.5, 2")
    pids_limit = serializers.CharField(required=False, allow_blank=True)
    labels = serializers.JSONField(required=False)
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; empty: unassigned")
    host = serializers.CharField(required=False, allow_blank=True)


class ActionSerializer(serializers.Serializer):
    timeout = serializers.IntegerField(required=False, min_value=0, help_text="stop/restart: seconds before KILL")
    signal = serializers.CharField(required=False, help_text="kill: the signal, KILL by default")


class BulkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=services.BULK_ACTIONS)
    refs = serializers.ListField(child=serializers.CharField(), min_length=1)


class PruneSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; empty: every team")


class LogsSerializer(serializers.Serializer):
    logs = serializers.CharField()


ACTIONS = ("start", "stop", "restart", "kill")
LIST_FILTERS = ("state", "team", "label", "image", "search", "order")


class ContainerList(generics.ListAPIView):
    serializer_class = ContainerSerializer

    @extend_schema(parameters=[OpenApiParameter(f, str) for f in (*LIST_FILTERS, "host")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = {f: self.request.query_params.get(f, "") for f in LIST_FILTERS}
        return services.list_containers(self.request.user, host=host_param(self.request),
                                        **{k: v for k, v in params.items() if v})

    @extend_schema(request=RunSerializer, responses={201: ContainerSerializer})
    def post(self, request):
        RunSerializer(data=request.data).is_valid(raise_exception=True)
        container = services.run_container(request.user, parse_run_input(request.data))
        return Response(ContainerSerializer(container).data, status=status.HTTP_201_CREATED)


class ContainerDetail(APIView):
    serializer_class = ContainerSerializer

    def get(self, request, ref):
        return Response(ContainerSerializer(services.get_container(request.user, ref, host=host_param(request))).data)

    @extend_schema(parameters=[OpenApiParameter("force", bool), OpenApiParameter("volumes", bool)],
                   responses={204: None})
    def delete(self, request, ref):
        services.remove_container(request.user, ref, force=_flag(request, "force"),
                                  volumes=_flag(request, "volumes"), host=host_param(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContainerAction(APIView):
    """POST /api/containers/<ref>/<start|stop|restart|kill>."""

    serializer_class = ActionSerializer

    @extend_schema(request=ActionSerializer, responses={200: ContainerSerializer}, operation_id="containers_action")
    def post(self, request, ref, action):
        if action not in ACTIONS:
            raise Http404(f"No such container action: {action} (use {', '.join(ACTIONS)})")
        body = ActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        host = host_param(request)
        if action == "start":
            c = services.start_container(request.user, ref, host=host)
        elif action == "stop":
            c = services.stop_container(request.user, ref, timeout=body.validated_data.get("timeout"), host=host)
        elif action == "restart":
            c = services.restart_container(request.user, ref, timeout=body.validated_data.get("timeout"), host=host)
        else:
            c = services.kill_container(request.user, ref, signal=body.validated_data.get("signal") or "KILL",
                                        host=host)
        return Response(ContainerSerializer(c).data)


class ContainerLogs(APIView):
    serializer_class = LogsSerializer

    @extend_schema(parameters=[OpenApiParameter("tail", int), OpenApiParameter("timestamps", bool)])
    def get(self, request, ref):
        tail = request.query_params.get("tail", "200")
        text = services.container_logs(request.user, ref, tail=None if tail == "all" else _int(tail, 200),
                                       timestamps=_flag(request, "timestamps"), host=host_param(request))
        return Response({"logs": text})


class ContainerInspect(APIView):
    serializer_class = None

    @extend_schema(responses={200: dict})
    def get(self, request, ref):
        return Response(services.inspect_container(request.user, ref, host=host_param(request)))


class ContainerBulk(APIView):
    serializer_class = BulkSerializer

    @extend_schema(request=BulkSerializer, responses={202: JobSerializer})
    def post(self, request):
        body = BulkSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.bulk_action(request.user, body.validated_data["action"], body.validated_data["refs"],
                                   host=host_param(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ContainerPrune(APIView):
    serializer_class = PruneSerializer

    @extend_schema(request=PruneSerializer, responses={200: dict})
    def post(self, request):
        body = PruneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.prune_containers(request.user, body.validated_data.get("team", ""),
                                                  host=host_param(request)))


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default
