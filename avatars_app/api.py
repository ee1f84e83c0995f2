"""REST endpoints for voices, prompts, avatars (with upload) and roles."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from livehuman_site.tenancy.api import TenantScopedViewSetMixin
from livehuman_site.tenancy.models import APIKeyScope
from livehuman_site.tenancy.permissions import CanAdministerTenant

from .models import Avatar, Prompt, Role, Voice
from .serializers import (
    AvatarRebuildSerializer,
    AvatarSerializer,
    PromptSerializer,
    RoleSerializer,
    VoiceSerializer,
)
from .services import check_declared_upload
from .tasks import queue_build


class TenantConfigViewSet(TenantScopedViewSetMixin, viewsets.ModelViewSet):
    """A tenant's configuration: everyone in the tenant reads, owners/admins and configuration API keys write."""

    permission_classes = [CanAdministerTenant]
    api_key_scopes = (APIKeyScope.CONFIGURATION,)


class UploadViewSetMixin:
    """Refuse an upload too large for the tenant from its Content-Length, before the body is parsed.

    DRF parses the body only when ``request.data`` is first used, after ``initial`` (authentication,
    permissions, throttles): here ``check_declared_upload`` runs first.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        tenant = self.scope.tenant
        if tenant is None:
            return
        try:
            check_declared_upload(tenant, request.META)
        except DjangoValidationError as exc:
            raise UploadTooLarge(exc.messages[0]) from None


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"


class VoiceViewSet(UploadViewSetMixin, TenantConfigViewSet):
    queryset = Voice.objects.all()
    serializer_class = VoiceSerializer
    filterset_fields = ["engine", "language"]
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]


class PromptViewSet(TenantConfigViewSet):
    queryset = Prompt.objects.prefetch_related("versions")
    serializer_class = PromptSerializer


class AvatarViewSet(UploadViewSetMixin, TenantConfigViewSet):
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
    """Roles; a sessions API key reads them too, to choose which to start."""

    api_key_read_scopes = (APIKeyScope.SESSIONS,)
    queryset = Role.objects.select_related("avatar", "voice", "prompt")
    serializer_class = RoleSerializer
    filterset_fields = ["active", "language"]
