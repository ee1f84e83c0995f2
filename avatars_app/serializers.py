"""REST representations of voices, prompts, avatars and roles."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.api import TenantScopedSerializer

from .build_messages import avatar_error, avatar_warnings
from .models import API_KEY_URLS, Avatar, Prompt, PromptVersion, Role, Voice
from .services import check_avatar_quota, check_upload_quota, file_checksum
from .uploads import accept_avatar_source, accept_reference_audio


class VoiceSerializer(TenantScopedSerializer):
    class Meta:
        model = Voice
        fields = [
            "id",
            "name",
            "engine",
            "voice_id",
            "language",
            "rate",
            "pitch",
            "volume",
            "server_url",
            "reference_audio",
            "reference_text",
        ]

    def validate_reference_audio(self, upload: Any) -> Any:
        if not upload:
            return upload
        check_upload_quota(self.context["scope"].tenant, upload.size)
        return accept_reference_audio(upload)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The engine checks its own settings (voice name, server, reference audio), as in the admin.
        current = {}
        if self.instance is not None:
            fields = ("engine", "voice_id", "language", "server_url", "reference_audio", "reference_text")
            current = {field: getattr(self.instance, field) for field in fields}
        Voice(**{**current, **attrs}).clean()
        return attrs


class PromptVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromptVersion
        fields = ["version", "system_text", "created_at"]


class PromptSerializer(TenantScopedSerializer):
    versions = PromptVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Prompt
        fields = ["id", "name", "system_text", "version", "updated_at", "versions"]


class AvatarSerializer(TenantScopedSerializer):
    """An avatar and its build: ``source_video`` is the upload (multipart); ``status``, ``stage``, ``progress``
    (percent) and ``error`` follow the build, ``warnings`` holds one line per thing to check in the preview;
    both in the request's language (Accept-Language)."""

    error = serializers.SerializerMethodField(
        help_text="Why the avatar cannot be used (its build failed, or its built files must be built again), in "
        "the request's language."
    )
    warnings = serializers.SerializerMethodField(
        help_text="What to check in the preview, one line each, in the request's language."
    )

    class Meta:
        model = Avatar
        fields = [
            "id",
            "name",
            "source_video",
            "fps",
            "lipsync_engine",
            "status",
            "progress",
            "stage",
            "error",
            "warnings",
            "frame_count",
            "width",
            "height",
            "source_checksum",
            "source_size",
            "build_started_at",
            "build_finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "progress",
            "stage",
            "frame_count",
            "width",
            "height",
            "source_checksum",
            "source_size",
            "build_started_at",
            "build_finished_at",
        ]
        extra_kwargs = {"source_video": {"write_only": True}}

    def get_error(self, avatar: Avatar) -> str:
        return avatar_error(avatar)

    def get_warnings(self, avatar: Avatar) -> str:
        return "\n".join(avatar_warnings(avatar))

    def validate_source_video(self, upload: Any) -> Any:
        check_upload_quota(self.context["scope"].tenant, upload.size)
        return accept_avatar_source(upload)

    def validate_fps(self, fps: int) -> int:
        allowed = livehuman_settings.ALLOWED_FPS
        if fps not in allowed:
            raise serializers.ValidationError(f"Choose one of: {', '.join(map(str, allowed))}.")
        return fps

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            check_avatar_quota(self.context["scope"].tenant)
        if "source_video" in attrs:
            attrs["source_checksum"], attrs["source_size"] = file_checksum(attrs["source_video"])
        return attrs


class AvatarRebuildSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Build again even when a bundle of the same video already exists."
    )


class RoleSerializer(TenantScopedSerializer):
    """A role; the LLM and ASR API keys can be written but are never returned."""

    has_llm_api_key = serializers.SerializerMethodField()
    has_asr_api_key = serializers.SerializerMethodField()

    class Meta:
        model = Role
        fields = [
            "id",
            "name",
            "avatar",
            "voice",
            "prompt",
            "asr_engine",
            "asr_base_url",
            "asr_model",
            "asr_api_key",
            "has_asr_api_key",
            "llm_engine",
            "llm_model",
            "llm_base_url",
            "llm_api_key",
            "has_llm_api_key",
            "temperature",
            "greeting",
            "language",
            "fps",
            "active",
        ]
        extra_kwargs = {"llm_api_key": {"write_only": True}, "asr_api_key": {"write_only": True}}

    def get_has_llm_api_key(self, role: Role) -> bool:
        return bool(role.llm_api_key)

    def get_has_asr_api_key(self, role: Role) -> bool:
        return bool(role.asr_api_key)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Model-level rules (allowed fps, base URL per engine) apply to the API as to the admin.
        Role(**{**self._current_values(), **attrs}).clean()
        if self.instance is not None:
            for key, url in API_KEY_URLS.items():
                attrs[key] = self.instance.api_key_for_edit(attrs.get(url), attrs.get(key), key_field=key)
        return attrs

    def _current_values(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        fields = ("fps", "llm_engine", "llm_base_url", "asr_engine", "asr_base_url")
        return {field: getattr(self.instance, field) for field in fields}
