"""GPT-SoVITS: a voice-cloning TTS server, reached over its api_v2 HTTP interface.

The request asks for a streamed WAV (``streaming_mode``), so the first audio
arrives while the server is still synthesising the rest of the text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from ...audio import apply_gain
from ..base import EngineUnavailable
from .base import PCM, TTSEngine, TTSError, VoiceSettings
from .wav_stream import WavStreamParser


class GPTSoVITSTTS(TTSEngine):
    """One GPT-SoVITS voice: the server at ``server_url`` clones ``reference_audio`` (a path on the server's
    machine) spoken as ``reference_text``. Rate is the server's speed factor; volume is applied here."""

    def __init__(self, voice: VoiceSettings, timeout_s: float) -> None:
        """``timeout_s``: the longest wait for the answer's next bytes (setting TTS_TIMEOUT_S)."""
        super().__init__(voice)
        if not voice.server_url:
            raise EngineUnavailable(
                "GPT-SoVITS needs the Voice's server URL (its api_v2 address, e.g. http://127.0.0.1:9880)"
            )
        self.url = voice.server_url.rstrip("/") + "/tts"
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def request_body(self, text: str) -> dict[str, Any]:
        language = self.voice.primary_language
        return {
            "text": text,
            "text_lang": language,
            "ref_audio_path": self.voice.reference_audio,
            "prompt_text": self.voice.reference_text,
            "prompt_lang": language,
            "media_type": "wav",
            "streaming_mode": True,
            "speed_factor": self.voice.rate,
        }

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        if not text.strip():
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
        parser = WavStreamParser()
        try:
            async with self._client.stream("POST", self.url, json=self.request_body(text)) as response:
                if response.status_code != httpx.codes.OK:
                    detail = (await response.aread())[:300].decode(errors="replace")
                    raise TTSError(f"GPT-SoVITS at {self.url} answered HTTP {response.status_code}: {detail}")
                async for data in response.aiter_bytes():
                    samples = parser.feed(data)
                    if len(samples):
                        yield PCM(apply_gain(samples, self.voice.volume), parser.sample_rate)
        except httpx.TimeoutException as exc:
            waited = f"sent nothing for {self.timeout_s} s ({type(exc).__name__})"
            raise TTSError(f"GPT-SoVITS at {self.url} {waited}") from exc
        except httpx.HTTPError as exc:
            raise TTSError(f"GPT-SoVITS at {self.url} failed: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
