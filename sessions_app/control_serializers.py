"""The bodies of the live-session control endpoints (say, state, role) as the OpenAPI schema shows them.

They document; they do not validate: a command's body is checked once, in
``commands.parse_command``, whether it came over REST or the WebSocket.
"""

from __future__ import annotations

from rest_framework import serializers


class SaySerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, help_text="At most SAY_MAX_CHARS characters.")
    interrupt = serializers.BooleanField(default=False)


class RtmpStatusSerializer(serializers.Serializer):
    """An RTMP stream: ``connecting``, ``live``, ``retrying`` (after a drop, with ``last_error``) or ``stopped``;
    the URL without its stream key."""

    state = serializers.CharField()
    url = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)


class RtmpSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["start", "stop"])
    url = serializers.CharField(required=False, help_text="rtmp:// or rtmps://…/app/stream-key, to start.")


class DegradeStateSerializer(serializers.Serializer):
    """Where the session is on its degradation ladder (README "Degradation under load")."""

    level = serializers.IntegerField(help_text="0: the role's own video; levels − 1: the cheapest.")
    levels = serializers.IntegerField()
    step = serializers.ChoiceField(
        choices=["top", "fps", "resolution", "engine"], help_text="What the current level changed."
    )
    fps = serializers.IntegerField()
    half_size = serializers.BooleanField(help_text="Frames are sent at half width and height.")
    lipsync_engine = serializers.CharField(help_text="The lip-sync engine rendering now.")


class SessionStateSerializer(serializers.Serializer):
    """``state`` is the owner's idle/listening/thinking/speaking, or the stored created/connected/ended
    when no process owns the session's media."""

    state = serializers.CharField()
    role = serializers.IntegerField()
    fps = serializers.IntegerField()
    speaking_text = serializers.CharField(allow_blank=True)
    rtmp = RtmpStatusSerializer(required=False, allow_null=True, help_text="The RTMP stream, when one runs.")
    degrade = DegradeStateSerializer(required=False, help_text="The degradation level, while the media is live.")


class RoleSwitchSerializer(serializers.Serializer):
    """The role to switch to: the id of one of the session's tenant's roles."""

    role = serializers.IntegerField(min_value=1)
