"""The ASR interface: a streaming recogniser fed 16 kHz audio during the turn, asked for the text at its end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from realtime.net.outbound import OutboundPolicy


class ASRError(RuntimeError):
    """Recognition failed for this utterance; the session reports it and goes on."""


@dataclass(frozen=True, kw_only=True)
class CloudASRSettings:
    """A role's cloud recogniser as plain values (the session factory fills it from the Role).

    ``outbound`` is checked on every connection: the default refuses every
    internal address. ``language``: the role's language tag ("zh", "en-US"),
    sent as a hint where the protocol takes one. ``timeout_s`` has no default:
    the session factory fills it from the ASR_TIMEOUT_S setting.
    """

    base_url: str = ""
    api_key: str = ""
    model: str = ""
    language: str = ""
    timeout_s: float  # connecting, and waiting for each answer the engine cannot go on without
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)

    @property
    def primary_language(self) -> str:
        """ "zh-CN" → "zh"; "" when the role names none."""
        return self.language.strip().lower().replace("_", "-").split("-")[0]


class ASREngine(ABC):
    """One per session; the models behind it are loaded once per process and shared.

    Per utterance: ``start()``, then ``accept()`` for each chunk while the
    user speaks (decoding happens here, so at end of turn only the tail is
    left), then ``finish()`` for the final text. ``reset()`` abandons an
    utterance (barge-in cancelled it, the session ends).
    Calls for one engine are sequential: await each before the next.
    """

    sample_rate: ClassVar[int] = 16_000
    # At most this much of the audio accepted so far may be missing from the partial transcript (audio the engine
    # gathers before it decodes). Declared by engines whose partials can end a turn early (conversation.listening);
    # None: the partials are not trusted for that, and only the VAD's silence window ends a turn.
    partial_lag_s: ClassVar[float | None] = None

    async def load(self) -> None:
        """Load the shared model now (at session start), so the first utterance does not wait for it."""

    @abstractmethod
    def start(self) -> None:
        """Begin an utterance (forgetting any unfinished one)."""

    @abstractmethod
    async def accept(self, pcm16k: np.ndarray) -> str | None:
        """Take int16 mono samples at 16 kHz; return the partial transcript when it changed, else None."""

    @abstractmethod
    async def finish(self) -> str:
        """End the utterance and return its final transcript ("" when nothing was recognised)."""

    @abstractmethod
    def reset(self) -> None:
        """Abandon the current utterance without waiting for a result."""

    async def aclose(self) -> None:
        """Release per-session resources (the session is over)."""
        self.reset()
