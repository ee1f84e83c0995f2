"""A session's conversation settings as plain values: the session factory fills them from the Role and LIVEHUMAN."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from realtime.engines.llm.base import LLMSettings


class TalkMode(StrEnum):
    """How the page sends the user's voice (its ``mode {talk}`` message)."""

    PUSH = "push"  # only while the talk button is held
    HANDS_FREE = "hands_free"  # always: voice activity decides when a turn starts and ends


class BargeIn(StrEnum):
    """Which speech may cut the avatar while it talks (setting BARGE_IN)."""

    ALWAYS = "always"  # any speech, hands-free included (relies on the browser's echo cancellation)
    PUSH_TO_TALK = "push_to_talk"  # only speech sent with the talk button held; hands-free speech waits its turn


@dataclass(frozen=True, kw_only=True)
class ConversationSettings:
    """Engines and turn-taking of one session. No Django objects: tests build it with ``testkit.defaults``.

    The LLM and the turn-taking fields have no defaults: the session factory fills them from the product
    settings (``livehuman_site.runtime_settings``), so their numbers live in ``conf.DEFAULTS`` only.
    """

    asr_engine: str = "pocketsphinx"
    asr_options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the ASR engine's class
    llm_engine: str = "echo"
    llm: LLMSettings
    language: str = "en"  # the role's language: picks the apology
    barge_in: BargeIn
    talk_mode: TalkMode = TalkMode.HANDS_FREE  # until the page says otherwise: a client that sends a mic wants it heard
    vad_silence_ms: int
    vad_sentence_silence_ms: int  # the silence that ends a turn whose partial transcript is a whole sentence
    vad_min_speech_ms: int
