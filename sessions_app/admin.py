"""Read-mostly admin for chat sessions: what was said, how long each stage took, how it ended."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars_app.models import Role
from livehuman_site.tenancy.admin import ReadOnlyTenantInline, TenantScopedAdmin
from livehuman_site.tenancy.scoping import scope_for_request

from . import control, services
from .admin_forms import BroadcastForm
from .broadcast import open_broadcast
from .commands import CommandError, StartRtmp, StopRtmp, parse_command
from .models import TRANSCRIPT_FIELDS, ChatSession, Message
from .owner import Refused


class MessageInline(ReadOnlyTenantInline):
    """The transcript with per-stage timings, written by the pipeline."""

    model = Message
    fields = TRANSCRIPT_FIELDS


@admin.register(ChatSession)
class ChatSessionAdmin(TenantScopedAdmin):
    """Sessions are opened by the chat page and the API, or started here as a broadcast; here they are inspected,
    their RTMP stream stopped and started, ended or deleted."""

    list_display = [
        "short_id",
        "role",
        "state",
        "user",
        "api_key",
        "created_at",
        "ended_at",
        "end_reason",
        "message_count",
    ]
    list_filter = ["state", "end_reason", "role", "created_at"]
    list_select_related = ["role", "user", "api_key"]
    search_fields = ["id", "role__name", "user__username", "messages__text"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "role",
        "user",
        "api_key",
        "state",
        "created_at",
        "started_at",
        "ended_at",
        "end_reason",
        "worker",
        "rtmp_stream",
    ]
    readonly_fields = fields
    inlines = [MessageInline]
    actions = ["end_sessions"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatSession]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description=gettext_lazy("ID"), ordering="id")
    def short_id(self, session: ChatSession) -> str:
        """The id's first 8 characters, which the search box matches: the whole UUID wrapped over four lines and
        pushed the list's last columns out of a 1280-pixel window."""
        return str(session.pk)[:8]

    @admin.display(description=gettext_lazy("messages"), ordering="message_total")
    def message_count(self, session: ChatSession) -> int:
        return session.message_total

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=gettext_lazy("RTMP stream"))
    def rtmp_stream(self, session: ChatSession) -> str:
        url = reverse("admin:sessions_app_chatsession_rtmp", args=[session.pk])
        return format_html('<a href="{}">{}</a>', url, _("Start or stop streaming to RTMP"))

    def get_urls(self) -> list:
        rtmp = path("<uuid:pk>/rtmp/", self.admin_site.admin_view(self.rtmp_view), name="sessions_app_chatsession_rtmp")
        broadcast = path(
            "broadcast/", self.admin_site.admin_view(self.broadcast_view), name="sessions_app_chatsession_broadcast"
        )
        return [rtmp, broadcast, *super().get_urls()]

    def broadcast_view(self, request: HttpRequest) -> HttpResponse:
        """Start a broadcast — a session of a role with no browser, streaming to an RTMP URL — through the same
        service as ``POST sessions/`` with ``{role, rtmp_url}``; then on to its RTMP page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        scope = scope_for_request(request)
        roles = scope.filter(Role.objects.filter(active=True)).order_by("name")
        form = BroadcastForm(request.POST or None, roles=roles)
        if request.method == "POST" and form.is_valid():
            try:
                session = open_broadcast(scope, form.cleaned_data["role"], request.user, form.cleaned_data["rtmp_url"])
            except (services.SessionLimitReached, services.RoleUnavailable, Refused) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, _("Broadcast started: RTMP stream %(state)s.") % session.rtmp_status)
                return redirect("admin:sessions_app_chatsession_rtmp", session.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Start a broadcast"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/chatsession/broadcast.html", context)

    def rtmp_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """Start or stop the session's RTMP stream, through the same command as ``POST sessions/<id>/rtmp``."""
        session = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, session) and not self.has_view_permission(request, session):
            raise PermissionDenied
        if request.method == "POST":
            kind = StartRtmp.kind if "start" in request.POST else StopRtmp.kind
            try:
                result = control.run(session, parse_command(kind, {"url": request.POST.get("url", "")}))
            except CommandError as exc:
                messages.error(request, str(exc))
            else:
                state = result.get("state", "stopped") if isinstance(result, dict) else "stopped"
                messages.success(request, _("RTMP stream: %(state)s.") % {"state": state})
            return redirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": _("RTMP stream of session %(id)s") % {"id": session.pk},
            "session": session,
            "opts": self.model._meta,
            "live": control.state(session),
        }
        return TemplateResponse(request, "admin/sessions_app/chatsession/rtmp.html", context)

    @admin.action(description=gettext_lazy("End the selected sessions"))
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[ChatSession]) -> None:
        ended = sum(services.end_session(session, ChatSession.EndReason.CLIENT) for session in queryset.open())
        messages.success(request, _("%(count)d sessions ended.") % {"count": ended})
