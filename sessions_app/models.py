"""Chat sessions and the messages spoken in them, with per-stage timings."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from avatars_app.models import Role
from livehuman_site.tenancy.models import TenantAPIKey, TenantOwnedModel, TenantQuerySet


class ChatSessionQuerySet(TenantQuerySet):
    def open(self) -> ChatSessionQuerySet:
        return self.exclude(state=ChatSession.State.ENDED)


class ChatSession(TenantOwnedModel):
    """One conversation between a user (or an integration) and a role.

    ``state`` is the lifecycle stored here; the live speaking state (idle,
    listening, thinking, speaking) belongs to the process that owns the session.
    """

    class State(models.TextChoices):
        # A context of their own: "created" and "ended" are also the time columns' labels, and Chinese says
        # a state (已创建) and a time (创建时间) differently.
        CREATED = "created", pgettext_lazy("session state", "created")
        CONNECTED = "connected", pgettext_lazy("session state", "connected")
        ENDED = "ended", pgettext_lazy("session state", "ended")

    class EndReason(models.TextChoices):
        CLIENT = "client", _("ended by the client")
        DISCONNECTED = "disconnected", _("connection lost")
        ICE_FAILED = "ice_failed", _("WebRTC connection failed")
        IDLE = "idle", _("idle timeout")
        SHUTDOWN = "shutdown", _("server shut down")
        ERROR = "error", _("error")
        ABANDONED = "abandoned", _("never connected")
        REVOKED = "revoked", _("access revoked")
        LOST = "lost", _("server lost")  # its owner stopped heartbeating: killed, or cut off from the database

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_sessions",
        verbose_name=_("user"),
    )
    api_key = models.ForeignKey(
        TenantAPIKey,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_sessions",
        verbose_name=_("API key"),
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="sessions", verbose_name=_("role"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.CREATED)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=16, choices=EndReason.choices, blank=True)
    worker = models.CharField(_("owning worker"), max_length=200, blank=True, help_text=_("Channel name of the owner."))
    heartbeat_at = models.DateTimeField(
        _("owner's last heartbeat"), null=True, blank=True, help_text=_("When the owning worker last stamped it.")
    )

    objects = ChatSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("chat session")
        verbose_name_plural = _("chat sessions")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.role} {self.id}"

    @property
    def is_open(self) -> bool:
        return self.state != self.State.ENDED

    def end(self, reason: str) -> bool:
        """Mark the session ended (once); returns False if it already was."""
        updated = (
            ChatSession.objects.filter(pk=self.pk)
            .exclude(state=self.State.ENDED)
            .update(state=self.State.ENDED, ended_at=timezone.now(), end_reason=reason)
        )
        self.refresh_from_db(fields=["state", "ended_at", "end_reason"])
        return bool(updated)


TRANSCRIPT_FIELDS = [
    "created_at",
    "speaker",
    "text",
    "asr_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "first_frame_ms",
    "total_ms",
    "interrupted",
]  # what a message shows in the admin and the API: who said what, when, and what each stage took


class Message(TenantOwnedModel):
    """A user's utterance or the role's answer, with the time each pipeline stage took."""

    class Speaker(models.TextChoices):
        USER = "user", _("user")
        ASSISTANT = "assistant", _("assistant")
        SYSTEM = "system", _("system")

    session = models.ForeignKey(
        ChatSession, on_delete=models.CASCADE, related_name="messages", verbose_name=_("session")
    )
    speaker = models.CharField(_("speaker"), max_length=16, choices=Speaker.choices)
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    asr_ms = models.PositiveIntegerField(_("ASR (ms)"), null=True, blank=True)
    llm_first_token_ms = models.PositiveIntegerField(_("LLM first token (ms)"), null=True, blank=True)
    tts_first_audio_ms = models.PositiveIntegerField(_("TTS first audio (ms)"), null=True, blank=True)
    first_frame_ms = models.PositiveIntegerField(_("first frame (ms)"), null=True, blank=True)
    total_ms = models.PositiveIntegerField(_("total (ms)"), null=True, blank=True)
    interrupted = models.BooleanField(_("interrupted"), default=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.get_speaker_display()}: {self.text[:40]}"
