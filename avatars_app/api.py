"""REST endpoints for voices, prompts, avatars (with upload) and roles."""

from __future__ import annotations

from rest_framework import parsers, viewsets

from livehuman_site.tenancy.api import TenantScopedViewSetMixin
from livehuman_site.tenancy.permissions import CanAdministerTenant

from .models import Avatar, Prompt, Role, Voice
from .serializers import AvatarSerializer, PromptSerializer, RoleSerializer, VoiceSerializer


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
    """Upload a video (multipart ``source_video``) to create an avatar; its build runs in Celery."""

    queryset = Avatar.objects.all()
    serializer_class = AvatarSerializer
    filterset_fields = ["status"]
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]


class RoleViewSet(TenantConfigViewSet):
    queryset = Role.objects.select_related("avatar", "voice", "prompt")
    serializer_class = RoleSerializer
    filterset_fields = ["active", "language"]
