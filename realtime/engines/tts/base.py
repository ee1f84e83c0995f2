"""The TTS interface: one async generator of PCM chunks per piece of text."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from realtime.net.outbound import OutboundPolicy


@dataclass(frozen=True)
class VoiceSettings:
    """A Voice row as the engines see it (no Django): filled by the session factory."""

    voice_id: str = ""
    language: str = "en"
    rate: float = 1.0
    pitch: int = 0  # percent
    volume: float = 1.0
    server_url: str = ""
    reference_audio: str = ""  # local file path
    reference_text: str = ""
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)  # what server_url may reach

    @property
    def primary_language(self) -> str:
        """ "zh-CN" → "zh": the part of the language tag engines choose voices by."""
        return (self.language.strip() or "en").lower().replace("_", "-").split("-")[0]


@dataclass(frozen=True)
class PCM:
    """A chunk of synthesised speech: mono int16 at the engine's own rate (resampled by the pipeline)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class VoiceSettingError(ValueError):
    """A Voice setting this engine cannot take, found when the Voice is saved.

    ``field`` names the Voice field and ``code`` says what is wrong ("required",
    "unknown_voice", "not_a_name"); ``choices`` lists valid values where there
    are few. The Django side turns these into a field error in the user's language.
    """

    def __init__(self, field: str, code: str, choices: tuple[str, ...] = ()) -> None:
        super().__init__(f"{field}: {code}")
        self.field = field
        self.code = code
        self.choices = choices


class TTSEngine(ABC):
    """Synthesises text with one voice. Heavy models are loaded once per process and shared."""

    def __init__(self, voice: VoiceSettings) -> None:
        self.voice = voice

    @classmethod
    def check_settings(cls, voice: VoiceSettings, **options: object) -> None:
        """Save-time check of a Voice's settings for this engine (``options``: the engine's process-wide
        constructor arguments). Raises VoiceSettingError; the default accepts everything."""

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[PCM]:
        """Yield audio for ``text`` as soon as it is available; raise EngineUnavailable or TTSError on failure."""

    async def aclose(self) -> None:
        """Release per-instance resources (HTTP clients); shared models stay loaded."""


class TTSError(RuntimeError):
    """Synthesis failed for this text (server error, timeout); the session goes on."""
