"""The product settings as the realtime library's dataclasses: the one mapping from setting names to fields.

The dataclasses under ``realtime/`` carry no product defaults of their own
(issue 11, point 5): every number lives in ``conf.DEFAULTS``. These functions
are pure — they read only the settings source they are given: the session
factory passes ``livehuman_settings`` (the one reader of the product's
settings), tests and benches pass the documented defaults through
``testkit.defaults``, so both build the same objects the same way.

A source is anything with the ``conf.DEFAULTS`` names as attributes.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from realtime.conversation import BargeIn, ConversationSettings
from realtime.degrade import DegradePolicy
from realtime.engines.asr.base import CloudASRSettings
from realtime.engines.llm.base import LLMSettings
from realtime.net.ice import IceSettings
from realtime.pipeline import PlayoutSettings


def playout_settings(s: Any) -> PlayoutSettings:
    """How far ahead a session's pipeline runs: the PLAYOUT_* and LIPSYNC_BATCH_SIZE settings."""
    return PlayoutSettings(
        lead_frames=int(s.PLAYOUT_LEAD_FRAMES),
        max_ahead_frames=int(s.PLAYOUT_MAX_AHEAD_FRAMES),
        batch_size=int(s.LIPSYNC_BATCH_SIZE),
    )


def degrade_policy(s: Any) -> DegradePolicy:
    """When a session steps down and up its degradation ladder, and what the ladder holds: the DEGRADE_* and
    FPS_LADDER settings."""
    return DegradePolicy(
        ladder=tuple(s.FPS_LADDER),
        enabled=bool(s.DEGRADE_ENABLED),
        late_frames=int(s.DEGRADE_LATE_FRAMES),
        window_s=float(s.DEGRADE_WINDOW_S),
        hold_s=float(s.DEGRADE_HOLD_S),
        recover_s=float(s.DEGRADE_RECOVER_S),
        headroom=float(s.DEGRADE_HEADROOM),
        half_size=bool(s.DEGRADE_HALF_SIZE),
        lighter_engines=tuple(s.DEGRADE_LIGHTER_ENGINES.items()),
    )


def llm_settings(s: Any, **role: Any) -> LLMSettings:
    """A role's LLM (``role``: model, base_url, api_key, …) with the product's LLM_* time and history limits."""
    return LLMSettings(
        timeout_s=float(s.LLM_TIMEOUT_S),
        idle_timeout_s=float(s.LLM_IDLE_TIMEOUT_S),
        answer_deadline_s=float(s.LLM_ANSWER_DEADLINE_S),
        history_chars=int(s.LLM_HISTORY_CHARS),
        **role,
    )


def conversation_settings(s: Any, *, llm: LLMSettings, **role: Any) -> ConversationSettings:
    """A role's engines (``role``: asr_engine, llm_engine, language, …) with the product's turn-taking settings."""
    return ConversationSettings(
        llm=llm,
        barge_in=barge_in(s),
        vad_silence_ms=int(s.VAD_SILENCE_MS),
        vad_sentence_silence_ms=int(s.VAD_SENTENCE_SILENCE_MS),
        vad_min_speech_ms=int(s.VAD_MIN_SPEECH_MS),
        **role,
    )


def barge_in(s: Any) -> BargeIn:
    """Which speech may cut the avatar: the BARGE_IN setting, refused at once when it names no choice."""
    try:
        return BargeIn(s.BARGE_IN)
    except ValueError:
        choices = " or ".join(repr(choice.value) for choice in BargeIn)
        raise ImproperlyConfigured(f"The LIVEHUMAN setting BARGE_IN must be {choices}, not {s.BARGE_IN!r}.") from None


def cloud_asr_settings(s: Any, **role: Any) -> CloudASRSettings:
    """A role's cloud recogniser (``role``: base_url, api_key, model, …) with the ASR_TIMEOUT_S setting."""
    return CloudASRSettings(timeout_s=float(s.ASR_TIMEOUT_S), **role)


def ice_settings(s: Any) -> IceSettings:
    """STUN/TURN servers and the transport policy for both peers: the ICE_*/TURN_* settings (ValueError when
    they are not usable together)."""
    return IceSettings(
        servers=tuple(s.ICE_SERVERS),
        turn_urls=tuple(s.TURN_URLS),
        turn_secret=s.TURN_SECRET,
        turn_ttl_s=int(s.TURN_TTL_S),
        transport_policy=s.ICE_TRANSPORT_POLICY,
    )


def pool_options(s: Any) -> dict[str, Any]:
    """``ModelPool``'s batching and frame-cache arguments: the LIPSYNC_BATCH_* and AVATAR_FRAME_CACHE_MB settings."""
    return {
        "batch_size": int(s.LIPSYNC_BATCH_SIZE),
        "batch_wait_ms": float(s.LIPSYNC_BATCH_WAIT_MS),
        "frame_cache_mb": int(s.AVATAR_FRAME_CACHE_MB),
    }
