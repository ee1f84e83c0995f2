"""Request and response bodies of the live-session control endpoints (say, state, role)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import serializers

from livehuman_site.conf import livehuman_settings


class SaySerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    interrupt = serializers.BooleanField(default=False)

    def validate_text(self, text: str) -> str:
        if not text.strip():
            raise serializers.ValidationError(_("Say something."))
        if len(text) > livehuman_settings.SAY_MAX_CHARS:
            raise serializers.ValidationError(
                _("Say at most %(count)d characters at once.") % {"count": livehuman_settings.SAY_MAX_CHARS}
            )
        return text


class SessionStateSerializer(serializers.Serializer):
    """``state`` is the owner's idle/listening/thinking/speaking, or the stored created/connected/ended
    when no process owns the session's media."""

    state = serializers.CharField()
    role = serializers.IntegerField()
    fps = serializers.IntegerField()
    speaking_text = serializers.CharField(allow_blank=True)


class RoleSwitchSerializer(serializers.Serializer):
    """The role to switch to: the id of one of the session's tenant's roles."""

    role = serializers.IntegerField(min_value=1)
