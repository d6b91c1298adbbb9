"""REST adapters for teams, members and personal API tokens."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dockweb.accounts import services
from dockweb.accounts.models import ApiToken, Membership, Role, Team


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "created"]
        read_only_fields = ["id", "created"]
        extra_kwargs = {"slug": {"required": False}}


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "created"]


class SetRoleSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used", "expires", "revoked"]


class NewTokenSerializer(serializers.Serializer):
    name = serializers.CharField()
    expires_in_days = serializers.IntegerField(required=False, min_value=1)


class IssuedTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the secret: shown in this answer only")

    class Meta(TokenSerializer.Meta):
        fields = TokenSerializer.Meta.fields + ["token"]


class TeamList(generics.ListAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self):
        return services.list_teams(self.request.user)

    @extend_schema(request=TeamSerializer, responses={201: TeamSerializer})
    def post(self, request):
        body = TeamSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.create_team(request.user, body.validated_data["name"], body.validated_data.get("slug", ""))
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamMembers(APIView):
    serializer_class = MemberSerializer

    @extend_schema(responses={200: MemberSerializer(many=True)})
    def get(self, request, slug):
        _, members = services.list_members(request.user, slug)
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(request=SetRoleSerializer, responses={200: MemberSerializer})
    def post(self, request, slug):
        body = SetRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        m = services.set_role(request.user, slug, body.validated_data["username"], body.validated_data["role"])
        return Response(MemberSerializer(m).data)

    @extend_schema(parameters=[OpenApiParameter("username", str, required=True)], responses={204: None})
    def delete(self, request, slug):
        services.remove_member(request.user, slug, request.query_params.get("username", ""))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenList(generics.ListAPIView):
    serializer_class = TokenSerializer

    def get_queryset(self):
        return services.list_tokens(self.request.user)

    @extend_schema(request=NewTokenSerializer, responses={201: IssuedTokenSerializer})
    def post(self, request):
        body = NewTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, raw = services.issue_token(request.user, body.validated_data["name"],
                                          body.validated_data.get("expires_in_days"))
        data = TokenSerializer(token).data
        data["token"] = raw
        return Response(data, status=status.HTTP_201_CREATED)


class TokenDetail(APIView):
    serializer_class = TokenSerializer

    @extend_schema(responses={200: TokenSerializer})
    def delete(self, request, pk):
        return Response(TokenSerializer(services.revoke_token(request.user, pk)).data)
