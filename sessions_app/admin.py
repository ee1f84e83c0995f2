"""Read-mostly admin for chat sessions: what was said, how long each stage took, how it ended."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from livehuman_site.tenancy.admin import ReadOnlyTenantInline, TenantScopedAdmin

from . import services
from .models import TRANSCRIPT_FIELDS, ChatSession, Message


class MessageInline(ReadOnlyTenantInline):
    """The transcript with per-stage timings, written by the pipeline."""

    model = Message
    fields = TRANSCRIPT_FIELDS


@admin.register(ChatSession)
class ChatSessionAdmin(TenantScopedAdmin):
    """Sessions are opened by the chat page and the API; here they are inspected, ended or deleted."""

    list_display = ["id", "role", "state", "user", "api_key", "created_at", "ended_at", "end_reason", "message_count"]
    list_filter = ["state", "end_reason", "role", "created_at"]
    list_select_related = ["role", "user", "api_key"]
    search_fields = ["id", "role__name", "user__username", "messages__text"]
    date_hierarchy = "created_at"
    fields = ["id", "role", "user", "api_key", "state", "created_at", "started_at", "ended_at", "end_reason", "worker"]
    readonly_fields = fields
    inlines = [MessageInline]
    actions = ["end_sessions"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatSession]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description=gettext_lazy("messages"), ordering="message_total")
    def message_count(self, session: ChatSession) -> int:
        return session.message_total

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=gettext_lazy("End the selected sessions"))
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[ChatSession]) -> None:
        ended = sum(services.end_session(session, ChatSession.EndReason.CLIENT) for session in queryset.open())
        messages.success(request, _("%(count)d sessions ended.") % {"count": ended})
