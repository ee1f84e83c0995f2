"""REST endpoints for chat sessions and their messages (DESIGN.md §7).

``ChatSessionViewSet`` is the place for per-session control actions (say,
interrupt, state, role): add an ``@action(detail=True)`` that fetches the session
with ``self.get_object()`` (tenant-scoped, and a member's own sessions only) and
calls a function in ``services``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from livehuman_site.tenancy.api import TenantScopedViewSetMixin
from livehuman_site.tenancy.models import APIKeyScope
from livehuman_site.tenancy.tickets import issue_ticket

from . import commands, control, services
from .broadcast import open_broadcast
from .control_serializers import (
    RoleSwitchSerializer,
    RtmpSerializer,
    RtmpStatusSerializer,
    SaySerializer,
    SessionStateSerializer,
)
from .models import ChatSession, Message
from .owner import Refused
from .serializers import ChatSessionSerializer, MessageSerializer


class SessionLimitError(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "session_limit"
    default_detail = _("The tenant's concurrent-session limit is reached.")


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = _("The request conflicts with the current state.")


class ChatSessionViewSet(
    TenantScopedViewSetMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Open a session with a role, list and inspect sessions, end one."""

    api_key_scopes = (APIKeyScope.SESSIONS,)
    queryset = ChatSession.objects.select_related("role")
    serializer_class = ChatSessionSerializer
    filterset_fields = ["state", "role"]
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[ChatSession]:
        return services.visible_sessions(self.scope, self.request.user, super().get_queryset())

    def perform_create(self, serializer: ChatSessionSerializer) -> None:
        """A session for a browser or integration to connect to; with ``rtmp_url``, a broadcast that starts
        here and now (it streams, and takes ``say`` over REST, with nobody connected)."""
        role, rtmp_url = serializer.validated_data["role"], serializer.validated_data.get("rtmp_url")
        try:
            if rtmp_url:
                session = open_broadcast(self.scope, role, self.request.user, rtmp_url)
            else:
                session = services.open_session(self.scope, role, self.request.user)
        except services.SessionLimitReached as exc:
            raise SessionLimitError(str(exc)) from exc
        except (services.RoleUnavailable, Refused) as exc:
            raise ConflictError(str(exc), code=exc.code) from exc
        session.ws_ticket = self._ticket(session)
        serializer.instance = session

    @extend_schema(request=None, responses=ChatSessionSerializer)
    @action(detail=True, methods=["post"])
    def ticket(self, request: Request, pk: Any = None) -> Response:
        """A new ``ws_url`` with a fresh ticket: to connect again after the first ticket was used or expired."""
        session = self.get_object()
        session.ws_ticket = self._ticket(session)
        return Response(self.get_serializer(session).data, status=status.HTTP_200_OK)

    def _ticket(self, session: ChatSession) -> str:
        """A single-use ticket for the session's WebSocket, acting for this caller (``tenancy.tickets``)."""
        return issue_ticket(
            tenant=session.tenant, session_id=session.pk, api_key=self.scope.api_key, user=self.request.user
        )

    @extend_schema(request=None, responses=ChatSessionSerializer)
    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: Any = None) -> Response:
        """Mark the session ended (a no-op when it already ended)."""
        session = self.get_object()
        services.end_session(session)
        return Response(self.get_serializer(session).data, status=status.HTTP_200_OK)

    @extend_schema(request=SaySerializer, responses={202: None, 409: None})
    @action(detail=True, methods=["post"])
    def say(self, request: Request, pk: Any = None) -> Response:
        """Make the avatar speak ``text``, after what it is saying or (``interrupt``) instead of it. 409 with the
        code ``busy`` when too much is queued, ``not_live`` when no process runs the session, ``session_ended``."""
        self._run(commands.Say.kind, request.data)
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None, 409: None})
    @action(detail=True, methods=["post"])
    def interrupt(self, request: Request, pk: Any = None) -> Response:
        """Stop speaking now and drop everything queued."""
        self._run(commands.Interrupt.kind, {})
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=SessionStateSerializer)
    @action(detail=True, methods=["get"], url_path="state")
    def live_state(self, request: Request, pk: Any = None) -> Response:
        """The live speaking state from the process that owns the session, else the stored state."""
        return Response(SessionStateSerializer(control.state(self.get_object())).data)

    @extend_schema(request=RoleSwitchSerializer, responses=ChatSessionSerializer)
    @action(detail=True, methods=["post"], url_path="role")
    def switch_role(self, request: Request, pk: Any = None) -> Response:
        """Play another role of the tenant in place: avatar, voice, prompt and LLM change without reconnecting.

        A connected session is switched by the worker that runs it (the reply
        carries ``switch_ms``, the time it took there); one not connected yet
        just starts as the new role.
        """
        session = self.get_object()
        with command_errors():
            command = commands.parse_command(commands.SwitchRole.kind, request.data)
            live = services.switch_role(session, command)
        return Response({**self.get_serializer(session).data, **live}, status=status.HTTP_200_OK)

    @extend_schema(request=RtmpSerializer, responses={202: RtmpStatusSerializer, 409: None})
    @action(detail=True, methods=["post"], url_path="rtmp")
    def rtmp(self, request: Request, pk: Any = None) -> Response:
        """Start (``{"action": "start", "url"}``) or stop (``{"action": "stop"}``) streaming the session to an
        RTMP URL; a dropped connection is retried and shown in ``state``, and never ends the session."""
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("action") == "stop":
            self._run(commands.StopRtmp.kind, body)
            return Response(None, status=status.HTTP_202_ACCEPTED)
        if body.get("action") != "start":
            raise exceptions.ValidationError({"action": [_('"action" is "start" or "stop".')]}, code="bad_message")
        return Response(self._run(commands.StartRtmp.kind, body), status=status.HTTP_202_ACCEPTED)

    def _run(self, kind: str, body: Any) -> dict[str, Any]:
        """Parse the command ``kind`` from ``body`` and run it on the session's owner."""
        with command_errors():
            command = commands.parse_command(kind, body if isinstance(body, dict) else {})
            return control.run(self.get_object(), command)


@contextmanager
def command_errors() -> Iterator[None]:
    """A ``CommandError`` as the API's error body: 400 naming the field for a bad body, else 409 with its code."""
    try:
        yield
    except commands.CommandError as exc:
        if exc.field is not None:
            raise exceptions.ValidationError({exc.field: [str(exc)]}, code=exc.code) from exc
        raise ConflictError(str(exc), code=exc.code) from exc


class MessageViewSet(TenantScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """The messages of one session, oldest first."""

    api_key_scopes = (APIKeyScope.SESSIONS,)
    queryset = Message.objects.all()
    serializer_class = MessageSerializer
    filterset_fields = ["speaker", "interrupted"]

    def get_queryset(self) -> QuerySet[Message]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no session in the URL
            return Message.objects.none()
        sessions = services.visible_sessions(self.scope, self.request.user)
        session = get_object_or_404(sessions, pk=self.kwargs["session_pk"])
        return super().get_queryset().filter(session=session)
