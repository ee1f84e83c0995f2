"""The Django edge of a live session: database rows and product settings in, plain ``realtime`` objects out.

This is the one module that reads ``livehuman_settings`` on behalf of the
realtime library (``livehuman_site.runtime_settings`` maps them onto its
dataclasses): everything past it (pool, pipeline, engines) sees only
dataclasses and constructor arguments, so it runs and is tested without
Django. Call ``build_session_config`` from sync code (the consumer wraps it in
``database_sync_to_async``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from avatars_app.models import Role, Voice
from avatars_app.voice_checks import tts_engine_options
from livehuman_site import runtime_settings
from livehuman_site.conf import livehuman_settings
from livehuman_site.outbound import outbound_policy
from realtime.config import SessionConfig
from realtime.conversation import ConversationSettings
from realtime.engines.tts.base import VoiceSettings
from realtime.net.ice import IceSettings, ice_servers
from realtime.pool import ModelPool

from .models import ChatSession


class SessionUnavailable(Exception):
    """The session's role cannot be played (no ready avatar)."""

    code = "role_unavailable"


def build_session_config(session: ChatSession, role: Role | None = None) -> SessionConfig:
    """The session as its role (or ``role``: the one it switches to, checked by the caller) plays it."""
    role = role or session.role
    avatar = role.avatar
    if avatar is None or not avatar.is_ready or not avatar.bundle_path:
        raise SessionUnavailable(_("The role %(role)s has no ready avatar.") % {"role": role.name})
    ice = ice_settings()
    return SessionConfig(
        session_id=str(session.pk),
        tenant=session.tenant.slug,
        role_id=role.pk,
        role_name=role.name,
        fps=role.fps,
        avatar_path=Path(settings.MEDIA_ROOT) / avatar.bundle_path,
        lipsync_engine=avatar.lipsync_engine,
        tts_engine=role.voice.engine,
        voice=voice_settings(role.voice),
        ice_servers=tuple(ice_servers(ice, user=f"server-{session.pk}")),
        ice_transport_policy=ice.transport_policy,
        playout=runtime_settings.playout_settings(livehuman_settings),
        conversation=conversation_settings(role, session_id=str(session.pk)),
        degrade=runtime_settings.degrade_policy(livehuman_settings),
        idle_timeout_s=livehuman_settings.SESSION_IDLE_TIMEOUT_S,
        greeting=role.greeting.strip(),
    )


def conversation_settings(role: Role, *, session_id: str) -> ConversationSettings:
    """The role's ASR and LLM engines and settings, and the product's turn-taking settings."""
    llm = runtime_settings.llm_settings(
        livehuman_settings,
        model=role.llm_model,
        base_url=role.llm_base_url,
        api_key=role.llm_api_key or "",
        temperature=role.temperature,
        system_prompt=role.prompt.system_text if role.prompt else "",
        user=session_id,  # Dify wants an end-user id; the session is the closest stable one
        outbound=outbound_policy(),
    )
    return runtime_settings.conversation_settings(
        livehuman_settings,
        asr_engine=role.asr_engine,
        asr_options=_asr_options(role),
        llm_engine=role.llm_engine,
        llm=llm,
        language=role.language,
    )


CLOUD_ASR_ENGINES = frozenset({"openai_transcribe", "dashscope"})


def _asr_options(role: Role) -> dict[str, Any]:
    """Constructor arguments of the role's ASR engine: FunASR's model folders (settings), a cloud engine's
    endpoint, key and model (the role) under the product's outbound policy."""
    if role.asr_engine == "funasr":
        return {
            "model_dir": livehuman_settings.FUNASR_MODEL_DIR,
            "punc_model_dir": livehuman_settings.FUNASR_PUNC_MODEL_DIR,
        }
    if role.asr_engine in CLOUD_ASR_ENGINES:
        settings = runtime_settings.cloud_asr_settings(
            livehuman_settings,
            base_url=role.asr_base_url,
            api_key=role.asr_api_key or "",
            model=role.asr_model,
            language=role.language,
            outbound=outbound_policy(),
        )
        return {"settings": settings}
    return {}


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
        outbound=outbound_policy(),
    )


def ice_settings() -> IceSettings:
    """STUN/TURN servers and the transport policy for both peers: the ICE_*/TURN_* settings."""
    try:
        return runtime_settings.ice_settings(livehuman_settings)
    except ValueError as exc:
        raise ImproperlyConfigured(f"The LIVEHUMAN ICE/TURN settings are not usable: {exc}.") from None


def engine_options() -> dict[str, dict[str, dict[str, Any]]]:
    """Process-wide constructor arguments of the engines the pool loads, by kind and name."""
    return {
        "tts": tts_engine_options(),
        "lipsync": {"wav2lip": {"checkpoint": livehuman_settings.WAV2LIP_CHECKPOINT}},
    }


@functools.cache
def get_pool() -> ModelPool:
    """This process's pool, created on first use, batching as the LIPSYNC_BATCH_* settings say."""
    return ModelPool(engine_options=engine_options(), **runtime_settings.pool_options(livehuman_settings))
