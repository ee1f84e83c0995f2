"""REST representations of chat sessions and messages."""

from __future__ import annotations

from rest_framework import serializers

from livehuman_site.tenancy.api import TenantScopedSerializer
from realtime.net.ice import ice_servers

from .commands import CommandError, checked_rtmp_url
from .models import TRANSCRIPT_FIELDS, ChatSession, Message
from .session_factory import ice_settings


class ChatSessionSerializer(TenantScopedSerializer):
    """A session; on creation the client names only the ``role`` and gets where to connect."""

    role_name = serializers.CharField(source="role.name", read_only=True)
    ws_url = serializers.SerializerMethodField(
        help_text="The session's WebSocket. On creation (and from POST .../ticket) it carries a single-use ticket "
        "valid for WS_TICKET_TTL_S seconds: connect with it as it is, no API key needed."
    )
    ice_servers = serializers.SerializerMethodField()
    ice_transport_policy = serializers.SerializerMethodField()
    rtmp_url = serializers.CharField(
        write_only=True, required=False, help_text="Start as a broadcast: no browser, streamed to this RTMP URL."
    )
    rtmp = serializers.SerializerMethodField()

    class Meta:
        model = ChatSession
        fields = [
            "id",
            "role",
            "role_name",
            "state",
            "created_at",
            "started_at",
            "ended_at",
            "end_reason",
            "ws_url",
            "ice_servers",
            "ice_transport_policy",
            "rtmp_url",
            "rtmp",
        ]
        read_only_fields = ["state", "created_at", "started_at", "ended_at", "end_reason"]

    def get_ws_url(self, session: ChatSession) -> str:
        """Where to connect; when the session was just started (or a ticket asked for), with its single-use
        ticket, so the client needs no API key in the URL."""
        ticket = getattr(session, "ws_ticket", None)
        return f"/ws/sessions/{session.id}/" + (f"?ticket={ticket}" if ticket else "")

    def get_ice_servers(self, session: ChatSession) -> list[dict]:
        """The page's own STUN/TURN servers; TURN REST credentials are made for this session and expire."""
        return ice_servers(ice_settings(), user=str(session.pk))

    def get_ice_transport_policy(self, session: ChatSession) -> str:
        return ice_settings().transport_policy

    def get_rtmp(self, session: ChatSession) -> dict | None:
        """A broadcast's stream status, in the reply that started it."""
        return getattr(session, "rtmp_status", None)

    def validate_rtmp_url(self, value: str) -> str:
        try:
            return checked_rtmp_url(value)
        except CommandError as exc:
            raise serializers.ValidationError(str(exc), code=exc.code) from None


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", *TRANSCRIPT_FIELDS]
        read_only_fields = fields
