"""What a live session needs to know, as plain values: the session factory fills it from the database rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.conversation.settings import ConversationSettings
from realtime.degrade import DegradePolicy
from realtime.engines.tts.base import VoiceSettings
from realtime.pipeline.pipeline import PlayoutSettings


@dataclass(frozen=True)
class SessionConfig:
    """One chat session's role, voice, avatar and media settings; no Django objects, so tests build it by hand
    (``testkit.defaults`` gives the product's default playout and degradation settings)."""

    session_id: str
    role_id: int
    role_name: str
    fps: int
    avatar_path: Path
    lipsync_engine: str
    tts_engine: str
    voice: VoiceSettings
    playout: PlayoutSettings
    degrade: DegradePolicy  # when to lower and raise the fps under load
    ice_transport_policy: str  # "relay": only TURN relays, as the page is told too
    ice_servers: tuple[Mapping[str, Any], ...] = ()  # the server peer's own (realtime.net.ice.ice_servers)
    conversation: ConversationSettings | None = None  # None: no voice input or LLM (the avatar only says texts)
    idle_timeout_s: float = 0.0  # end the session after this long without speech or text; 0: never
    greeting: str = ""  # said as the role's first message when media starts (and after a switch to the role)
    tenant: str = ""  # the tenant's slug: a label on metrics and log lines
