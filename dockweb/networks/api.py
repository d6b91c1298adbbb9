"""REST adapters for networks: list/create, detail/remove, inspect, connect/disconnect, prune."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.containers.api import PruneSerializer
from dockweb.core.api import host_param
from dockweb.networks import services
from dockweb.networks.models import Network


class NetworkSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    id = serializers.CharField(source="engine_id", read_only=True)

    class Meta:
        model = Network
        fields = ["id", "name", "host", "team", "driver", "subnet", "gateway", "internal", "labels", "endpoints",
                  "created"]


class CreateNetworkSerializer(serializers.Serializer):
    name = serializers.CharField()
    team = serializers.CharField(required=False, allow_blank=True)
    host = serializers.CharField(required=False, allow_blank=True)
    subnet = serializers.CharField(required=False, allow_blank=True)
    gateway = serializers.CharField(required=False, allow_blank=True)
    internal = serializers.BooleanField(default=False)
    labels = serializers.DictField(child=serializers.CharField(), required=False)


class AttachSerializer(serializers.Serializer):
    container = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField(), required=False)
    force = serializers.BooleanField(default=False, help_text="disconnect only")


class NetworkList(generics.ListAPIView):
    serializer_class = NetworkSerializer

    @extend_schema(parameters=[OpenApiParameter("search", str), OpenApiParameter("team", str),
                               OpenApiParameter("host", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = self.request.query_params
        return services.list_networks(self.request.user, host=host_param(self.request),
                                      search=q.get("search", ""), team=q.get("team", ""))

    @extend_schema(request=CreateNetworkSerializer, responses={201: NetworkSerializer})
    def post(self, request):
        body = CreateNetworkSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        net = services.create_network(request.user, d["name"], d.get("team", ""), d.get("host", ""),
                                      subnet=d.get("subnet", ""), gateway=d.get("gateway", ""),
                                      internal=d["internal"], labels=d.get("labels"))
        return Response(NetworkSerializer(net).data, status=status.HTTP_201_CREATED)


class NetworkDetail(APIView):
    serializer_class = NetworkSerializer

    def get(self, request, ref):
        return Response(NetworkSerializer(services.get_network(request.user, ref, host=host_param(request))).data)

    @extend_schema(responses={204: None})
    def delete(self, request, ref):
        services.remove_network(request.user, ref, host=host_param(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NetworkInspect(APIView):
    serializer_class = None

    @extend_schema(responses={200: dict})
    def get(self, request, ref):
        return Response(services.inspect_network(request.user, ref, host=host_param(request)))


class NetworkAttach(APIView):
    serializer_class = AttachSerializer
    verb = "connect"

    @extend_schema(request=AttachSerializer, responses={200: NetworkSerializer})
    def post(self, request, ref):
        body = AttachSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        if self.verb == "connect":
            net = services.connect(request.user, ref, d["container"], d.get("aliases"), host=host_param(request))
        else:
            net = services.disconnect(request.user, ref, d["container"], d["force"], host=host_param(request))
        return Response(NetworkSerializer(net).data)


class NetworkPrune(APIView):
    serializer_class = PruneSerializer

    @extend_schema(request=PruneSerializer, responses={200: dict})
    def post(self, request):
        body = PruneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.prune_networks(request.user, body.validated_data.get("team", ""),
                                                host=host_param(request)))
