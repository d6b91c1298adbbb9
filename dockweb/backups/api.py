"""REST adapters for backups: policies, backups (verify, restore, download, delete), back up now, upload."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FileUploadParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.backups import services
from dockweb.backups.models import BackupPolicy, BackupRecord
from dockweb.core.api import JobSerializer, host_param
from dockweb.volumes.services import get_volume


class PolicySerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    volume = serializers.CharField(source="volume_name", read_only=True)

    class Meta:
        model = BackupPolicy
        fields = ["id", "name", "team", "host", "volume", "selector", "preset", "cron", "keep_last", "keep_daily",
                  "keep_weekly", "keep_monthly", "compression", "consistency", "verify", "pre_command",
                  "post_command", "command_container", "storage", "s3_target", "encryption", "age_recipient",
                  "enabled", "created", "updated", "last_success"]


class PolicyInputSerializer(serializers.Serializer):
    """What a client sends; services.save_policy validates (its errors come back per field, 400)."""
    name = serializers.CharField(required=False)
    team = serializers.CharField(required=False, help_text="team slug (on create)")
    host = serializers.CharField(required=False, help_text="host name (on create; default: the first host)")
    volume = serializers.CharField(required=False, allow_blank=True)
    selector = serializers.CharField(required=False, allow_blank=True)
    preset = serializers.ChoiceField(choices=BackupPolicy.Preset.values, required=False)
    cron = serializers.CharField(required=False, allow_blank=True)
    keep_last = serializers.IntegerField(required=False, min_value=0)
    keep_daily = serializers.IntegerField(required=False, min_value=0)
    keep_weekly = serializers.IntegerField(required=False, min_value=0)
    keep_monthly = serializers.IntegerField(required=False, min_value=0)
    compression = serializers.CharField(required=False)
    consistency = serializers.CharField(required=False)
    verify = serializers.CharField(required=False)
    pre_command = serializers.CharField(required=False, allow_blank=True)
    post_command = serializers.CharField(required=False, allow_blank=True)
    command_container = serializers.CharField(required=False, allow_blank=True)
    storage = serializers.CharField(required=False)
    s3_target = serializers.CharField(required=False, allow_blank=True)
    encryption = serializers.CharField(required=False)
    passphrase = serializers.CharField(required=False, allow_blank=True, write_only=True)
    age_recipient = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class BackupSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    volume = serializers.CharField(source="volume_name", read_only=True)
    encrypted = serializers.BooleanField(read_only=True)

    class Meta:
        model = BackupRecord
        fields = ["id", "volume", "team", "host", "policy", "job", "origin", "storage", "engine_id", "created",
                  "compression", "size", "data_bytes", "files", "duration", "checksum", "stored_checksum",
                  "encryption", "encrypted", "verified_ok", "verify_message", "verified_at"]


class RestoreSerializer(serializers.Serializer):
    volume = serializers.CharField(required=False, allow_blank=True,
                                   help_text="target volume; default: the backup's own volume")
    new = serializers.BooleanField(default=False, help_text="create the target volume (it must not exist)")
    confirm = serializers.CharField(required=False, allow_blank=True,
                                    help_text="to replace an existing volume: its name")
    secret = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                   help_text="passphrase or age identity of an encrypted backup")


def _input(request) -> dict:
    body = PolicyInputSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class PolicyList(generics.ListAPIView):
    serializer_class = PolicySerializer

    def get_queryset(self):
        return services.list_policies(self.request.user)

    @extend_schema(request=PolicyInputSerializer, responses={201: PolicySerializer})
    def post(self, request):
        policy = services.save_policy(request.user, _input(request))
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetail(APIView):
    serializer_class = PolicySerializer

    def get(self, request, pk: int):
        return Response(PolicySerializer(services.get_policy(request.user, pk)).data)

    @extend_schema(request=PolicyInputSerializer, responses={200: PolicySerializer})
    def patch(self, request, pk: int):
        policy = services.get_policy(request.user, pk, "operate", audit="backup_policy.update")
        data = {"name": policy.name, "volume": policy.volume_name, "selector": policy.selector, **_input(request)}
        return Response(PolicySerializer(services.save_policy(request.user, data, policy)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        services.delete_policy(request.user, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyRun(APIView):
    serializer_class = None

    @extend_schema(request=None, responses={202: JobSerializer(many=True)})
    def post(self, request, pk: int):
        jobs = services.start_policy_run(request.user, pk)
        return Response(JobSerializer(jobs, many=True).data, status=status.HTTP_202_ACCEPTED)


class BackupList(generics.ListAPIView):
    serializer_class = BackupSerializer

    @extend_schema(parameters=[OpenApiParameter("volume", str), OpenApiParameter("host", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        ref = self.request.query_params.get("volume")
        vol = get_volume(self.request.user, ref, "view", host_param(self.request)) if ref else None
        return services.list_backups(self.request.user, vol)


class BackupDetail(APIView):
    serializer_class = BackupSerializer

    def get(self, request, pk: int):
        return Response(BackupSerializer(services.get_backup(request.user, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        services.delete_backup(request.user, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BackupVerify(APIView):
    serializer_class = None

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request, pk: int):
        return Response(JobSerializer(services.start_verify(request.user, pk)).data, status=status.HTTP_202_ACCEPTED)


class BackupRestore(APIView):
    serializer_class = RestoreSerializer

    @extend_schema(request=RestoreSerializer, responses={202: JobSerializer})
    def post(self, request, pk: int):
        body = RestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        job = services.start_restore(request.user, pk, d.get("volume", ""), new_volume=d["new"],
                                     confirm=d.get("confirm", ""), secret=d.get("secret", ""))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class BackupDownload(APIView):
    serializer_class = None

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, pk: int):
        rec, chunks = services.download(request.user, pk)
        response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{rec.filename}"'
        return response


class VolumeBackupNow(APIView):
    serializer_class = None

    @extend_schema(request=None, parameters=[OpenApiParameter("host", str)], responses={202: JobSerializer})
    def post(self, request, ref: str):
        job = services.start_backup(request.user, ref, host_param(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class VolumeUpload(APIView):
    """POST the archive as the body (Content-Type application/x-tar ...) or as multipart field `archive`."""
    serializer_class = None
    parser_classes = [MultiPartParser, FileUploadParser]

    @extend_schema(request={"application/x-tar": bytes}, parameters=[OpenApiParameter("strip", int)],
                   responses={201: BackupSerializer})
    def post(self, request, ref: str):
        upload = request.data.get("archive") or request.data.get("file")
        if upload is None:
            return Response({"archive": ["send the archive as the body or the multipart field archive"]},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            strip = int(request.query_params.get("strip") or request.data.get("strip") or 0)
        except (TypeError, ValueError):
            return Response({"strip": ["a whole number"]}, status=status.HTTP_400_BAD_REQUEST)
        rec = services.upload_archive(request.user, ref, upload.chunks(1 << 20), strip, host_param(request))
        return Response(BackupSerializer(rec).data, status=status.HTTP_201_CREATED)
