"""Any OpenAI-compatible transcription server: OpenAI's Whisper API, a self-hosted Whisper or SenseVoice server.

The protocol has no streaming: at the end of the turn its audio is POSTed as
one WAV file (``multipart/form-data`` to ``{base_url}/audio/transcriptions``
with ``model``, ``language`` and ``response_format=json``) and the answer's
``text`` is the transcript. So the turn's whole decode happens after the user
stops; there are no partial transcripts. Every connection goes through the
outbound policy.
"""

from __future__ import annotations

import asyncio
import io
import wave

import httpx
import numpy as np

from realtime.engines.asr.base import ASREngine, ASRError, CloudASRSettings
from realtime.engines.base import EngineUnavailable
from realtime.engines.server_errors import error_reason
from realtime.net.outbound import refusal_of
from realtime.net.redact import redact_url

DEFAULT_MODEL = "whisper-1"


def wav_bytes(pcm16k: np.ndarray, sample_rate: int = 16_000) -> bytes:
    """Mono int16 samples as a complete WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.asarray(pcm16k, dtype=np.int16).tobytes())
    return buffer.getvalue()


class OpenAITranscriptionASR(ASREngine):
    """Collects the turn's audio and sends it whole at ``finish``."""

    def __init__(self, settings: CloudASRSettings) -> None:
        if not settings.base_url:
            raise EngineUnavailable(
                "The OpenAI-compatible transcription engine needs the server's base URL (the role's ASR base URL,"
                " e.g. https://api.openai.com/v1)."
            )
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/audio/transcriptions"
        self.shown_url = redact_url(self.url)  # as messages name it: no key from its query
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = settings.outbound.http_client(timeout=httpx.Timeout(settings.timeout_s), headers=headers)
        self._chunks: list[np.ndarray] = []

    def start(self) -> None:
        self._chunks = []

    async def accept(self, pcm16k: np.ndarray) -> str | None:
        self._chunks.append(np.array(pcm16k, dtype=np.int16))
        return None  # the server sees the turn only at its end

    async def finish(self) -> str:
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return ""
        fields = {"model": self.settings.model or DEFAULT_MODEL, "response_format": "json"}
        if self.settings.primary_language:
            fields["language"] = self.settings.primary_language
        files = {"file": ("turn.wav", wav_bytes(np.concatenate(chunks)), "audio/wav")}
        timeout_s = self.settings.timeout_s
        try:
            async with asyncio.timeout(timeout_s):  # the whole request: a server that accepts and then stalls too
                response = await self._client.post(self.url, data=fields, files=files)
        except TimeoutError:
            raise ASRError(f"no transcript from {self.shown_url} within {timeout_s:g} s") from None
        except httpx.RequestError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                raise ASRError(f"outbound policy: {refused}") from None
            raise ASRError(f"cannot reach {self.shown_url}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ASRError(f"{self.shown_url} answered HTTP {response.status_code}: {error_reason(response.content)}")
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError):
            raise ASRError(f"{self.shown_url} sent no transcription JSON: {response.text[:120]!r}") from None
        if not isinstance(text, str):
            raise ASRError(f"{self.shown_url} sent a non-text transcript: {text!r:.120}")
        return text.strip()

    def reset(self) -> None:
        self._chunks = []

    async def aclose(self) -> None:
        self.reset()
        await self._client.aclose()
