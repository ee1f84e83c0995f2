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


class TTSEngine(ABC):
    """Synthesises text with one voice. Heavy models are loaded once per process and shared."""

    def __init__(self, voice: VoiceSettings) -> None:
        self.voice = voice

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[PCM]:
        """Yield audio for ``text`` as soon as it is available; raise EngineUnavailable or TTSError on failure."""

    async def aclose(self) -> None:
        """Release per-instance resources (HTTP clients); shared models stay loaded."""


class TTSError(RuntimeError):
    """Synthesis failed for this text (server error, timeout); the session goes on."""
