"""REST adapters for volumes: list/create, detail/remove, inspect, prune."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.containers.api import PruneSerializer, _flag
from dockweb.core.api import host_param
from dockweb.volumes import services
from dockweb.volumes.models import Volume


class VolumeSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Volume
        fields = ["name", "host", "team", "driver", "mountpoint", "labels", "created"]


class CreateVolumeSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    team = serializers.CharField(required=False, allow_blank=True)
    host = serializers.CharField(required=False, allow_blank=True)
    labels = serializers.DictField(child=serializers.CharField(), required=False)


class VolumePruneSerializer(PruneSerializer):
    all = serializers.BooleanField(default=False, help_text="named volumes too, not only anonymous ones")


class VolumeList(generics.ListAPIView):
    serializer_class = VolumeSerializer

    @extend_schema(parameters=[OpenApiParameter("search", str), OpenApiParameter("team", str),
                               OpenApiParameter("host", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = self.request.query_params
        return services.list_volumes(self.request.user, host=host_param(self.request), search=q.get("search", ""),
                                     team=q.get("team", ""))

    @extend_schema(request=CreateVolumeSerializer, responses={201: VolumeSerializer})
    def post(self, request):
        body = CreateVolumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        vol = services.create_volume(request.user, d.get("name", ""), d.get("team", ""), d.get("host", ""),
                                     d.get("labels"))
        return Response(VolumeSerializer(vol).data, status=status.HTTP_201_CREATED)


class VolumeDetail(APIView):
    serializer_class = VolumeSerializer

    def get(self, request, ref):
        return Response(VolumeSerializer(services.get_volume(request.user, ref, host=host_param(request))).data)

    @extend_schema(parameters=[OpenApiParameter("force", bool)], responses={204: None})
    def delete(self, request, ref):
        services.remove_volume(request.user, ref, force=_flag(request, "force"), host=host_param(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VolumeInspect(APIView):
    serializer_class = None

    @extend_schema(responses={200: dict})
    def get(self, request, ref):
        return Response(services.inspect_volume(request.user, ref, host=host_param(request)))


class VolumePrune(APIView):
    serializer_class = VolumePruneSerializer

    @extend_schema(request=VolumePruneSerializer, responses={200: dict})
    def post(self, request):
        body = VolumePruneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.prune_volumes(request.user, body.validated_data.get("team", ""),
                                               host=host_param(request), named=body.validated_data["all"]))
