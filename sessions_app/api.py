"""REST endpoints for chat sessions and their messages (DESIGN.md §7)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from livehuman_site.tenancy.api import TenantScopedViewSetMixin

from . import services
from .models import ChatSession, Message
from .serializers import ChatSessionSerializer, MessageSerializer


class SessionLimitError(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "session_limit"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ChatSessionViewSet(
    TenantScopedViewSetMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Open a session with a role, list and inspect sessions, end one."""

    queryset = ChatSession.objects.select_related("role")
    serializer_class = ChatSessionSerializer
    filterset_fields = ["state", "role"]
    ordering_fields = ["created_at"]

    def perform_create(self, serializer: ChatSessionSerializer) -> None:
        try:
            serializer.instance = services.open_session(
                self.scope, serializer.validated_data["role"], self.request.user
            )
        except services.SessionLimitReached as exc:
            raise SessionLimitError(str(exc)) from exc
        except services.RoleUnavailable as exc:
            raise ConflictError(str(exc), code=exc.code) from exc

    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: Any = None) -> Response:
        session = self.get_object()
        services.end_session(session)
        return Response(self.get_serializer(session).data, status=status.HTTP_200_OK)


class MessageViewSet(TenantScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """The messages of one session, oldest first."""

    queryset = Message.objects.all()
    serializer_class = MessageSerializer
    filterset_fields = ["speaker", "interrupted"]

    def get_queryset(self) -> Any:
        session = get_object_or_404(self.scope.filter(ChatSession.objects.all()), pk=self.kwargs["session_pk"])
        return super().get_queryset().filter(session=session)
