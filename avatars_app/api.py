"""REST endpoints for voices, prompts, avatars (with upload) and roles."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from livehuman_site.tenancy.api import TenantScopedViewSetMixin
from livehuman_site.tenancy.permissions import CanAdministerTenant

from .models import Avatar, Prompt, Role, Voice
from .serializers import (
    AvatarRebuildSerializer,
    AvatarSerializer,
    PromptSerializer,
    RoleSerializer,
    VoiceSerializer,
)
from .tasks import queue_build


class TenantConfigViewSet(TenantScopedViewSetMixin, viewsets.ModelViewSet):
    """A tenant's configuration: everyone in the tenant reads, owners/admins and API keys write."""

    permission_classes = [CanAdministerTenant]


class VoiceViewSet(TenantConfigViewSet):
    queryset = Voice.objects.all()
    serializer_class = VoiceSerializer
    filterset_fields = ["engine", "language"]
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]


class PromptViewSet(TenantConfigViewSet):
    queryset = Prompt.objects.prefetch_related("versions")
    serializer_class = PromptSerializer


class AvatarViewSet(TenantConfigViewSet):
    """Upload a video (multipart ``source_video``) to create an avatar; its build runs in Celery. Poll the avatar
    for ``status``, ``stage``, ``progress`` and ``error``; ``rebuild`` queues the build again (after a failure, or
    when a worker was lost mid-build)."""

    queryset = Avatar.objects.all()
    serializer_class = AvatarSerializer
    filterset_fields = ["status"]
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]

    def perform_create(self, serializer: AvatarSerializer) -> None:
        super().perform_create(serializer)
        queue_build(serializer.instance)

    def perform_update(self, serializer: AvatarSerializer) -> None:
        previous_fps = serializer.instance.fps
        super().perform_update(serializer)
        if "source_video" in serializer.validated_data or serializer.instance.fps != previous_fps:
            queue_build(serializer.instance)

    @extend_schema(request=AvatarRebuildSerializer, responses={202: AvatarSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request: Request, pk: str | None = None) -> Response:
        avatar = self.get_object()
        options = AvatarRebuildSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        queue_build(avatar, force=options.validated_data["force"])
        return Response(self.get_serializer(avatar).data, status=status.HTTP_202_ACCEPTED)


class RoleViewSet(TenantConfigViewSet):
    queryset = Role.objects.select_related("avatar", "voice", "prompt")
    serializer_class = RoleSerializer
    filterset_fields = ["active", "language"]
