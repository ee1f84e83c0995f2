"""Admin for a tenant's voices, prompts (with earlier versions), avatars and roles.

An avatar's change page shows its build live: a progress bar polling ``build-status/`` (JSON) and, once ready,
a strip of frames with the detected boxes drawn (``preview.png``). Uploading a video here queues its build
exactly as the REST API does.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.admin import ReadOnlyTenantInline, TenantScopedAdmin
from livehuman_site.tenancy.models import Tenant
from livehuman_site.tenancy.scoping import scope_for_request
from realtime.avatar.format import Manifest, UnsupportedBundle
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.mouth_atlas import ATLAS

from .build_messages import avatar_error, avatar_warnings
from .build_stages import stage_label
from .bundle.preview import atlas_png, preview_png
from .models import API_KEY_URLS, Avatar, Prompt, PromptVersion, Role, Voice
from .services import bundle_location, check_avatar_quota, check_upload_quota, record_source
from .tasks import queue_build
from .uploads import accept_avatar_source, accept_reference_audio

_BUILDING = (Avatar.Status.PENDING, Avatar.Status.BUILDING)


class VoiceAdminForm(forms.ModelForm):
    """The reference audio is accepted only if it decodes as audio (the API applies the same check)."""

    class Meta:
        model = Voice
        fields = "__all__"

    def clean_reference_audio(self) -> Any:
        upload = self.cleaned_data.get("reference_audio")
        if upload and "reference_audio" in self.changed_data:
            return accept_reference_audio(upload)
        return upload


@admin.register(Voice)
class VoiceAdmin(TenantScopedAdmin):
    form = VoiceAdminForm
    list_display = ["name", "engine", "voice_id", "language", "rate"]
    list_filter = ["engine", "language"]
    search_fields = ["name", "voice_id"]


class PromptVersionInline(ReadOnlyTenantInline):
    """Earlier texts of the prompt, kept on every edit."""

    model = PromptVersion
    fields = ["version", "system_text", "created_at"]


@admin.register(Prompt)
class PromptAdmin(TenantScopedAdmin):
    list_display = ["name", "version", "updated_at"]
    search_fields = ["name", "system_text"]
    readonly_fields = ["version", "updated_at"]
    inlines = [PromptVersionInline]


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=gettext_lazy(
            "Stored encrypted and never shown. Leave empty to keep the current key; a changed base URL without a"
            " new key clears it."
        ),
    )


class RoleAdminForm(forms.ModelForm):
    """The API keys are write-only here too: never rendered back, kept when left empty."""

    llm_api_key = _secret_field(gettext_lazy("LLM API key"))
    asr_api_key = _secret_field(gettext_lazy("ASR API key"))

    class Meta:
        model = Role
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for key, url in API_KEY_URLS.items():
            data[key] = self.instance.api_key_for_edit(data.get(url), data.get(key), key_field=key)
        return data


@admin.register(Role)
class RoleAdmin(TenantScopedAdmin):
    form = RoleAdminForm
    list_display = ["name", "avatar", "voice", "prompt", "llm_engine", "language", "fps", "active"]
    list_filter = ["active", "language", "llm_engine", "asr_engine"]
    list_select_related = ["avatar", "voice", "prompt"]
    search_fields = ["name"]


class AvatarAdminForm(forms.ModelForm):
    """Checks the tenant's quotas (number of avatars, upload size) and the fps before anything is stored."""

    scope_tenant: Tenant | None = None  # set per request by AvatarAdmin.get_form (a non-superuser's tenant)

    class Meta:
        model = Avatar
        fields = "__all__"

    def clean_fps(self) -> int:
        fps = self.cleaned_data["fps"]
        allowed = livehuman_settings.ALLOWED_FPS
        if fps not in allowed:
            raise ValidationError(_("Choose one of: %(allowed)s.") % {"allowed": ", ".join(map(str, allowed))})
        return fps

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tenant = data.get("tenant") or self.scope_tenant or getattr(self.instance, "tenant", None)
        if tenant is None:
            return data
        upload = data.get("source_video")
        try:
            if self.instance.pk is None:
                check_avatar_quota(tenant)
            if upload is not None and "source_video" in self.changed_data:
                check_upload_quota(tenant, upload.size)
                data["source_video"] = accept_avatar_source(upload)
        except ValidationError as exc:
            self.add_error(None if exc.code == "avatar_quota" else "source_video", exc)
        return data


@admin.register(Avatar)
class AvatarAdmin(TenantScopedAdmin):
    form = AvatarAdminForm
    list_display = [
        *("name", "status", "progress_percent", "stage_display", "fps"),
        *("frame_count", "lipsync_engine", "created_at"),
    ]
    list_filter = ["status", "lipsync_engine"]
    search_fields = ["name", "source_checksum"]
    readonly_fields = [
        "build",
        "frame_count",
        "width",
        "height",
        "source_size",
        "source_checksum",
        "build_started_at",
        "build_finished_at",
    ]
    actions = ["rebuild"]

    class Media:
        js = ["avatars_app/build_progress.js"]
        css = {"all": ["avatars_app/build_progress.css"]}

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        form.scope_tenant = scope_for_request(request).tenant
        return form

    def save_model(self, request: HttpRequest, obj: Avatar, form: AvatarAdminForm, change: bool) -> None:
        new_source = "source_video" in form.changed_data
        if new_source:
            record_source(obj, form.cleaned_data["source_video"])
        super().save_model(request, obj, form, change)
        if new_source or "fps" in form.changed_data:
            queue_build(obj)

    @admin.display(description=gettext_lazy("progress"), ordering="progress")
    def progress_percent(self, avatar: Avatar) -> str:
        return f"{avatar.progress}%"

    @admin.display(description=gettext_lazy("stage"), ordering="stage")
    def stage_display(self, avatar: Avatar) -> str:
        return stage_label(avatar)

    @admin.display(description=gettext_lazy("build"))
    def build(self, avatar: Avatar | None) -> str:
        """The live build panel (progress bar, stage, error, warnings, preview); rendered from a template, so
        the row's texts (error, warnings) are escaped there."""
        if avatar is None or avatar.pk is None:
            return _("Saving with a video or photo queues its build.")
        return render_to_string(
            "admin/avatars_app/avatar/build_panel.html",
            {"avatar": avatar, "kept": _kept_span(avatar), **_status_payload(avatar)},
        )

    @admin.action(description=gettext_lazy("Build the selected avatars again"))
    def rebuild(self, request: HttpRequest, queryset: QuerySet[Avatar]) -> None:
        for avatar in queryset:
            queue_build(avatar)
        messages.success(request, _("%(count)d builds queued.") % {"count": len(queryset)})

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/build-status/", view(self.build_status_view), name="avatars_app_avatar_status"),
            path("<path:object_id>/preview.png", view(self.preview_view), name="avatars_app_avatar_preview"),
            path("<path:object_id>/atlas.png", view(self.atlas_view), name="avatars_app_avatar_atlas"),
            *super().get_urls(),
        ]

    def _visible_avatar(self, request: HttpRequest, object_id: str) -> Avatar:
        avatar = self.get_object(request, object_id)  # through get_queryset: another tenant's id is not found
        if avatar is None or not self.has_view_permission(request, avatar):
            raise Http404
        return avatar

    def build_status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """What the progress bar polls: status, stage, percent, error, warnings, and the preview once ready."""
        return JsonResponse(_status_payload(self._visible_avatar(request, object_id)))

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return _png_response(preview_png(self._ready_bundle(request, object_id)))

    def atlas_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The grid of the person's mouths the lip-sync chooses from (video avatars)."""
        grid = atlas_png(self._ready_bundle(request, object_id))
        if grid is None:
            raise Http404(_("This avatar has no mouth atlas."))
        return _png_response(grid)

    def _ready_bundle(self, request: HttpRequest, object_id: str) -> AvatarBundle:
        avatar = self._visible_avatar(request, object_id)
        if not avatar.is_ready:
            raise Http404(_("The avatar is not built yet."))
        try:
            return AvatarBundle.open(bundle_location(avatar))
        except UnsupportedBundle as exc:
            raise Http404(str(exc)) from None


def _png_response(png: bytes) -> HttpResponse:
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


def _kept_span(avatar: Avatar) -> dict[str, Any] | None:
    """What part of the source the built avatar uses, for the preview's caption (None before it is built)."""
    if not avatar.is_ready:
        return None
    try:
        manifest = Manifest.read(bundle_location(avatar))
    except UnsupportedBundle:
        return None
    start, end = manifest.kept_span
    return {
        "photo": manifest.kind == "photo",
        "start": f"{start:.1f}",
        "end": f"{end:.1f}",
        "total": f"{manifest.source_seconds:.1f}",
    }


def _status_payload(avatar: Avatar) -> dict[str, Any]:
    return {
        "id": avatar.pk,
        "status": avatar.status,
        "status_label": str(avatar.get_status_display()),
        "stage": avatar.stage,
        "stage_label": stage_label(avatar),
        "progress": avatar.progress,
        "error": avatar_error(avatar),
        "warnings": avatar_warnings(avatar),
        "frame_count": avatar.frame_count,
        "running": avatar.status in _BUILDING,
        "status_url": reverse("admin:avatars_app_avatar_status", args=[avatar.pk]),
        "preview_url": reverse("admin:avatars_app_avatar_preview", args=[avatar.pk]) if avatar.is_ready else "",
        "atlas_url": reverse("admin:avatars_app_avatar_atlas", args=[avatar.pk]) if _has_atlas(avatar) else "",
    }


def _has_atlas(avatar: Avatar) -> bool:
    """Whether the ready avatar's bundle holds a mouth atlas (its manifest says so)."""
    if not avatar.is_ready:
        return False
    try:
        return bool(Manifest.read(bundle_location(avatar)).extras.get(ATLAS, {}).get("built"))
    except UnsupportedBundle:
        return False
