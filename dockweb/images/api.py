"""REST adapters for images: list, detail, history, inspect, remove, tag, prune, pull (a job)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.containers.api import PruneSerializer, _flag
from dockweb.core.api import JobSerializer, host_param
from dockweb.images import services
from dockweb.images.models import Image


class ImageSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="engine_id", read_only=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Image
        fields = ["id", "host", "team", "tags", "size", "created", "labels"]


class HistorySerializer(serializers.Serializer):
    """One layer of GET /images/{ref}/history, as the engine answers it."""

    Id = serializers.CharField()
    Created = serializers.IntegerField()
    CreatedBy = serializers.CharField()
    Tags = serializers.ListField(child=serializers.CharField(), allow_null=True)
    Size = serializers.IntegerField()
    Comment = serializers.CharField()


class TagSerializer(serializers.Serializer):
    repo = serializers.CharField()
    tag = serializers.CharField(required=False, default="latest")


class PullSerializer(serializers.Serializer):
    image = serializers.CharField(help_text="busybox:1.36, ghcr.io/org/app:tag")
    team = serializers.CharField(required=False, allow_blank=True)
    host = serializers.CharField(required=False, allow_blank=True)


class ImageList(generics.ListAPIView):
    serializer_class = ImageSerializer

    @extend_schema(parameters=[OpenApiParameter("search", str), OpenApiParameter("order", str),
                               OpenApiParameter("host", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = self.request.query_params
        return services.list_images(self.request.user, host=host_param(self.request), search=q.get("search", ""),
                                    order=q.get("order", "tags_text"))


class ImageDetail(APIView):
    serializer_class = ImageSerializer

    def get(self, request, ref):
        return Response(ImageSerializer(services.get_image(request.user, ref, host=host_param(request))).data)

    @extend_schema(parameters=[OpenApiParameter("force", bool)], responses={204: None})
    def delete(self, request, ref):
        services.remove_image(request.user, ref, force=_flag(request, "force"), host=host_param(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageHistory(APIView):
    serializer_class = None

    @extend_schema(responses={200: HistorySerializer(many=True)})
    def get(self, request, ref):
        return Response(services.image_history(request.user, ref, host=host_param(request)))


class ImageInspect(APIView):
    serializer_class = None

    @extend_schema(responses={200: dict})
    def get(self, request, ref):
        return Response(services.inspect_image(request.user, ref, host=host_param(request)))


class ImageTag(APIView):
    serializer_class = TagSerializer

    @extend_schema(request=TagSerializer, responses={200: ImageSerializer})
    def post(self, request, ref):
        body = TagSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = services.tag_image(request.user, ref, body.validated_data["repo"], body.validated_data["tag"],
                                   host=host_param(request))
        return Response(ImageSerializer(image).data)


class ImagePull(APIView):
    serializer_class = PullSerializer

    @extend_schema(request=PullSerializer, responses={202: JobSerializer})
    def post(self, request):
        body = PullSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.pull_image(request.user, body.validated_data["image"], body.validated_data.get("team", ""),
                                  body.validated_data.get("host", ""))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImagePrune(APIView):
    serializer_class = PruneSerializer

    @extend_schema(request=PruneSerializer, responses={200: dict})
    def post(self, request):
        body = PruneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.prune_images(request.user, body.validated_data.get("team", ""),
                                              host=host_param(request)))
