"""What a tenant configures: voices, prompts, avatars, and the roles that combine them."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _
from encrypted_fields.fields import EncryptedCharField

from livehuman_site.conf import livehuman_settings
from livehuman_site.outbound import OutboundURLValidator, validate_outbound_url
from livehuman_site.tenancy.models import TenantOwnedModel

from .engine_labels import translated_engine_choices
from .voice_checks import check_voice_settings


class Language(models.TextChoices):
    CHINESE = "zh", _("Chinese")
    ENGLISH = "en", _("English")


def _tenant_upload_path(folder: str, instance: TenantOwnedModel, filename: str) -> str:
    # A random folder per upload: two files with the same name never overwrite each other.
    return str(
        PurePosixPath("tenants", str(instance.tenant_id), folder, uuid.uuid4().hex, PurePosixPath(filename).name)
    )


def voice_reference_path(instance: Voice, filename: str) -> str:
    return _tenant_upload_path("voices", instance, filename)


def avatar_source_path(instance: Avatar, filename: str) -> str:
    return _tenant_upload_path("avatar-sources", instance, filename)


class Voice(TenantOwnedModel):
    """A TTS engine and its voice settings."""

    name = models.CharField(_("name"), max_length=120)
    engine = models.CharField(_("TTS engine"), max_length=32, choices=translated_engine_choices("tts"), default="piper")
    voice_id = models.CharField(
        _("voice id"),
        max_length=200,
        blank=True,
        help_text=_(
            "Engine-specific: an edge-tts voice name, an espeak-ng voice (espeak-ng --voices), the name of a Piper"
            " voice installed on the server; empty for the engine default."
        ),
    )
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.ENGLISH)
    rate = models.FloatField(_("speed"), default=1.0, validators=[MinValueValidator(0.5), MaxValueValidator(2.0)])
    pitch = models.IntegerField(_("pitch (%)"), default=0, validators=[MinValueValidator(-50), MaxValueValidator(50)])
    volume = models.FloatField(_("volume"), default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    server_url = models.URLField(
        _("server URL"),
        blank=True,
        validators=[validate_outbound_url],
        help_text=_("For HTTP engines such as GPT-SoVITS."),
    )
    reference_audio = models.FileField(_("reference audio"), upload_to=voice_reference_path, blank=True)
    reference_text = models.TextField(
        _("reference text"), blank=True, help_text=_("What is said in the reference audio.")
    )

    class Meta:
        verbose_name = _("voice")
        verbose_name_plural = _("voices")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.engine})"

    def clean(self) -> None:
        super().clean()
        check_voice_settings(self)


class Prompt(TenantOwnedModel):
    """A role's system prompt; each edit keeps the previous text as a PromptVersion."""

    name = models.CharField(_("name"), max_length=120)
    system_text = models.TextField(_("system prompt"))
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("prompt")
        verbose_name_plural = _("prompts")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic():
            if self.pk is not None:
                previous = Prompt.objects.filter(pk=self.pk).values("system_text", "version").first()
                if previous and previous["system_text"] != self.system_text:
                    PromptVersion.objects.create(
                        tenant_id=self.tenant_id,
                        prompt_id=self.pk,
                        version=previous["version"],
                        system_text=previous["system_text"],
                    )
                    self.version = previous["version"] + 1
            super().save(*args, **kwargs)


class PromptVersion(TenantOwnedModel):
    """An earlier text of a Prompt, kept when the prompt was edited."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions", verbose_name=_("prompt"))
    version = models.PositiveIntegerField(_("version"))
    system_text = models.TextField(_("system prompt"))
    created_at = models.DateTimeField(_("saved"), auto_now_add=True)

    class Meta:
        verbose_name = _("prompt version")
        verbose_name_plural = _("prompt versions")
        ordering = ["prompt", "-version"]
        constraints = [models.UniqueConstraint(fields=["prompt", "version"], name="unique_prompt_version")]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.version}"


def _default_fps() -> int:
    return livehuman_settings.DEFAULT_FPS


class Avatar(TenantOwnedModel):
    """A digital human's face: the uploaded video and the bundle built from it (DESIGN.md §6)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        BUILDING = "building", _("building")
        READY = "ready", _("ready")
        FAILED = "failed", _("failed")

    name = models.CharField(_("name"), max_length=120)
    source_video = models.FileField(_("source video or photo"), upload_to=avatar_source_path)
    source_checksum = models.CharField(_("source SHA-256"), max_length=64, blank=True, editable=False)
    source_size = models.PositiveBigIntegerField(_("source size (bytes)"), default=0, editable=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING, editable=False
    )
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0, editable=False)
    stage = models.CharField(_("stage"), max_length=64, blank=True, editable=False)
    # ``error`` and ``warnings`` hold the build's messages in English (logs, rows from before messages were
    # kept); ``error_message`` and ``warning_messages`` hold them untranslated (realtime/avatar/messages.py), so
    # each reader sees them in their own language (build_messages.py).
    error = models.TextField(_("error"), blank=True, editable=False)
    error_message = models.JSONField(default=dict, blank=True, editable=False)
    warnings = models.TextField(_("warnings"), blank=True, editable=False)
    warning_messages = models.JSONField(default=list, blank=True, editable=False)
    bundle_path = models.CharField(
        _("bundle location"), max_length=255, blank=True, editable=False, help_text=_("Relative to MEDIA_ROOT.")
    )
    fps = models.PositiveSmallIntegerField(_("frames per second"), default=_default_fps)
    frame_count = models.PositiveIntegerField(_("frame count"), default=0, editable=False)
    width = models.PositiveIntegerField(_("width"), default=0, editable=False)
    height = models.PositiveIntegerField(_("height"), default=0, editable=False)
    lipsync_engine = models.CharField(
        _("lip-sync engine"), max_length=32, choices=translated_engine_choices("lipsync"), default="default"
    )
    task_id = models.CharField(_("build task"), max_length=64, blank=True, editable=False)
    build_started_at = models.DateTimeField(_("build started"), null=True, blank=True, editable=False)
    build_finished_at = models.DateTimeField(_("build finished"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("avatar")
        verbose_name_plural = _("avatars")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY


# Each secret of a Role and the URL it may be sent to.
API_KEY_URLS = {"llm_api_key": "llm_base_url", "asr_api_key": "asr_base_url"}


class Role(TenantOwnedModel):
    """A digital human a user talks to: face, voice, prompt and LLM settings."""

    name = models.CharField(_("name"), max_length=120)
    avatar = models.ForeignKey(
        Avatar, on_delete=models.PROTECT, related_name="roles", verbose_name=_("avatar"), null=True, blank=True
    )
    voice = models.ForeignKey(Voice, on_delete=models.PROTECT, related_name="roles", verbose_name=_("voice"))
    prompt = models.ForeignKey(
        Prompt, on_delete=models.SET_NULL, related_name="roles", verbose_name=_("prompt"), null=True, blank=True
    )
    asr_engine = models.CharField(
        _("speech recognition"), max_length=32, choices=translated_engine_choices("asr"), default="pocketsphinx"
    )
    asr_base_url = models.CharField(
        _("ASR server URL"),
        max_length=500,
        blank=True,
        validators=[OutboundURLValidator(schemes=("http", "https", "ws", "wss"))],
        help_text=_(
            "OpenAI-compatible transcription: the base URL, e.g. https://api.openai.com/v1. DashScope real-time:"
            " empty for wss://dashscope.aliyuncs.com/api-ws/v1/inference."
        ),
    )
    asr_model = models.CharField(_("ASR model"), max_length=120, blank=True)
    asr_api_key = EncryptedCharField(_("ASR API key"), max_length=500, blank=True, null=True)  # empty: NULL
    llm_engine = models.CharField(
        _("LLM engine"), max_length=32, choices=translated_engine_choices("llm"), default="echo"
    )
    llm_model = models.CharField(_("LLM model"), max_length=120, blank=True)
    llm_base_url = models.URLField(_("LLM base URL"), blank=True, validators=[validate_outbound_url])
    llm_api_key = EncryptedCharField(_("LLM API key"), max_length=500, blank=True, null=True)  # empty is stored as NULL
    temperature = models.FloatField(
        _("temperature"), default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    greeting = models.TextField(_("greeting"), blank=True)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.ENGLISH)
    fps = models.PositiveSmallIntegerField(_("video fps"), default=_default_fps)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("role")
        verbose_name_plural = _("roles")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.fps not in livehuman_settings.ALLOWED_FPS:
            allowed = ", ".join(map(str, livehuman_settings.ALLOWED_FPS))
            raise ValidationError({"fps": _("Choose one of: %(allowed)s.") % {"allowed": allowed}})
        if self.llm_engine in {"openai", "dify"} and not self.llm_base_url:
            raise ValidationError({"llm_base_url": _("This LLM engine needs a base URL.")})
        scheme = self.asr_base_url.split(":", 1)[0].lower() if self.asr_base_url else ""
        if self.asr_engine == "openai_transcribe" and scheme not in {"http", "https"}:
            raise ValidationError({"asr_base_url": _("This speech recognition engine needs an http(s) base URL.")})
        if self.asr_engine == "dashscope" and scheme not in {"", "ws", "wss"}:
            raise ValidationError({"asr_base_url": _("DashScope real-time recognition needs a wss:// URL.")})

    def api_key_for_edit(
        self, base_url: str | None, sent_key: str | None, *, key_field: str = "llm_api_key"
    ) -> str | None:
        """The key to store after an edit: a key sent with it, else the stored one, but never the stored one
        for another base URL (it would be sent to a host its owner never gave it to)."""
        if sent_key:
            return sent_key
        if self.pk is not None and base_url is not None and base_url != getattr(self, API_KEY_URLS[key_field]):
            return None
        return getattr(self, key_field)
