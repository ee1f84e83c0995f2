"""edge-tts: Microsoft Edge's online neural voices over a WebSocket (needs internet).

The service streams mp3; it is decoded frame by frame as it arrives, so audio
is handed on while the rest of the sentence is still downloading.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from ...audio import CompressedAudioDecoder
from ..base import EngineUnavailable
from .base import PCM, TTSEngine, TTSError, VoiceSettingError, VoiceSettings

_VOICE_NAME = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]+){1,4}")  # "zh-CN-XiaoxiaoNeural", "en-US-AriaNeural"
DEFAULT_VOICES = {"en": "en-US-AriaNeural", "zh": "zh-CN-XiaoxiaoNeural"}
# edge-tts takes pitch only as a shift in Hz; our pitch is a percentage, taken of a typical speaking pitch.
NOMINAL_PITCH_HZ = 150
CONNECT_TIMEOUT_S = 5  # an unreachable service must fail the sentence quickly, not stall the session
RECEIVE_TIMEOUT_S = 15


def edge_prosody(voice: VoiceSettings) -> dict[str, str]:
    """Rate, volume and pitch in edge-tts's strings: rate 1.1 → "+10%", volume 0.5 → "-50%", pitch 10 → "+15Hz"."""
    return {
        "rate": f"{round((voice.rate - 1) * 100):+d}%",
        "volume": f"{round((voice.volume - 1) * 100):+d}%",
        "pitch": f"{round(voice.pitch / 100 * NOMINAL_PITCH_HZ):+d}Hz",
    }


class EdgeTTS(TTSEngine):
    """An edge-tts voice (``voice_id`` like "en-US-AriaNeural"; by language when empty). All controls are native."""

    def __init__(self, voice: VoiceSettings) -> None:
        super().__init__(voice)
        try:
            from edge_tts.data_classes import TTSConfig
        except ImportError:
            raise EngineUnavailable("edge TTS needs the edge-tts package: pip install edge-tts") from None
        self.voice_name = voice.voice_id or DEFAULT_VOICES.get(voice.primary_language, DEFAULT_VOICES["en"])
        try:
            TTSConfig(self.voice_name, boundary="SentenceBoundary", **edge_prosody(voice))
        except ValueError as exc:
            raise EngineUnavailable(f"edge-tts cannot use this Voice: {exc}") from None

    @classmethod
    def check_settings(cls, voice: VoiceSettings, **options: object) -> None:
        if voice.voice_id and not _VOICE_NAME.fullmatch(voice.voice_id):
            raise VoiceSettingError("voice_id", "not_a_name")

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        import aiohttp
        import edge_tts

        if not text.strip():
            return
        communicate = edge_tts.Communicate(
            text,
            self.voice_name,
            **edge_prosody(self.voice),
            connect_timeout=CONNECT_TIMEOUT_S,
            receive_timeout=RECEIVE_TIMEOUT_S,
        )
        decoder = CompressedAudioDecoder("mp3")
        try:
            async for message in communicate.stream():
                if message["type"] == "audio":
                    samples = decoder.decode(message["data"])
                    if len(samples):
                        yield PCM(samples, decoder.sample_rate)
        except (aiohttp.ClientError, edge_tts.exceptions.EdgeTTSException, TimeoutError, OSError) as exc:
            raise TTSError(
                f"edge-tts failed for voice {self.voice_name} ({type(exc).__name__}: {exc}); "
                "it needs internet access to speech.platform.bing.com"
            ) from exc
        tail = decoder.flush()
        if len(tail):
            yield PCM(tail, decoder.sample_rate)
