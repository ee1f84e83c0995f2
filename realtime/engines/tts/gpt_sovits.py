"""GPT-SoVITS: a voice-cloning TTS server, reached over its api_v2 HTTP interface.

The request asks for a streamed WAV (``streaming_mode``), so the first audio
arrives while the server is still synthesising the rest of the text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ...audio import apply_gain
from ...net.outbound import refusal_of
from ...net.redact import redact_url
from ..base import EngineUnavailable
from .base import PCM, TTSEngine, TTSError, VoiceSettingError, VoiceSettings
from .wav_stream import WavStreamParser

logger = logging.getLogger(__name__)


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
        self.shown_url = redact_url(self.url)  # as messages name it: no key from its query
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def check_settings(cls, voice: VoiceSettings, **options: object) -> None:
        # The reference audio is only ever the Voice's own upload (the session factory passes its stored path).
        if not voice.server_url:
            raise VoiceSettingError("server_url", "required")
        if not voice.reference_audio:
            raise VoiceSettingError("reference_audio", "required")

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
            # Every connection is checked against the outbound policy at the address it resolves to.
            self._client = self.voice.outbound.http_client(timeout=httpx.Timeout(self.timeout_s))
        parser = WavStreamParser()
        try:
            async with self._client.stream("POST", self.url, json=self.request_body(text)) as response:
                if response.status_code != httpx.codes.OK:
                    # The body is the server's own text: for the log only, never for the tenant.
                    detail = (await response.aread())[:300].decode(errors="replace")
                    logger.warning(
                        "GPT-SoVITS at %s answered HTTP %s: %s", self.shown_url, response.status_code, detail
                    )
                    raise TTSError(f"GPT-SoVITS at {self.shown_url} answered HTTP {response.status_code}")
                async for data in response.aiter_bytes():
                    samples = parser.feed(data)
                    if len(samples):
                        yield PCM(apply_gain(samples, self.voice.volume), parser.sample_rate)
        except httpx.TimeoutException as exc:
            waited = f"sent nothing for {self.timeout_s} s ({type(exc).__name__})"
            raise TTSError(f"GPT-SoVITS at {self.shown_url} {waited}") from exc
        except httpx.HTTPError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                raise TTSError(f"GPT-SoVITS at {self.shown_url} refused: {refused}") from exc
            raise TTSError(f"GPT-SoVITS at {self.shown_url} failed: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
