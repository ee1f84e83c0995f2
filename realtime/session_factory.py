"""The Django edge of a live session: database rows in, a plain ``SessionConfig`` out.

Everything past this module (pool, pipeline, engines) sees only dataclasses,
so it runs and is tested without a database. Call from sync code (the consumer
wraps it in ``database_sync_to_async``).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from avatars_app.models import Voice
from livehuman_site.conf import livehuman_settings
from sessions_app.models import ChatSession

from .config import SessionConfig
from .engines.tts.base import VoiceSettings
from .pipeline import PlayoutSettings


class SessionUnavailable(Exception):
    """The session's role cannot be played (no ready avatar)."""

    code = "role_unavailable"


def build_session_config(session: ChatSession) -> SessionConfig:
    role = session.role
    avatar = role.avatar
    if avatar is None or not avatar.is_ready or not avatar.bundle_path:
        raise SessionUnavailable(_("The role %(role)s has no ready avatar.") % {"role": role.name})
    return SessionConfig(
        session_id=str(session.pk),
        role_id=role.pk,
        role_name=role.name,
        fps=role.fps,
        avatar_path=Path(settings.MEDIA_ROOT) / avatar.bundle_path,
        lipsync_engine=avatar.lipsync_engine,
        tts_engine=role.voice.engine,
        voice=voice_settings(role.voice),
        ice_servers=tuple(livehuman_settings.ICE_SERVERS),
        playout=PlayoutSettings(
            lead_frames=livehuman_settings.PLAYOUT_LEAD_FRAMES,
            max_ahead_frames=livehuman_settings.PLAYOUT_MAX_AHEAD_FRAMES,
            batch_size=livehuman_settings.LIPSYNC_BATCH_SIZE,
        ),
    )


def voice_settings(voice: Voice) -> VoiceSettings:
    return VoiceSettings(
        voice_id=voice.voice_id,
        language=voice.language,
        rate=voice.rate,
        pitch=voice.pitch,
        volume=voice.volume,
        server_url=voice.server_url,
        reference_audio=voice.reference_audio.path if voice.reference_audio else "",
        reference_text=voice.reference_text,
    )
