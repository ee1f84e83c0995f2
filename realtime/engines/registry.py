"""Names stored on a Voice or Role → engine classes, by dotted path.

Classes are imported only when an engine is used, so listing the names (for
model choices and validation) never imports torch, FunASR or an HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

ENGINES: dict[str, dict[str, str]] = {
    "tts": {
        "piper": "realtime.engines.tts.piper.PiperTTS",
        "espeak": "realtime.engines.tts.espeak.EspeakTTS",
        "edge": "realtime.engines.tts.edge.EdgeTTS",
        "gpt_sovits": "realtime.engines.tts.gpt_sovits.GPTSoVITSTTS",
    },
    "asr": {
        "pocketsphinx": "realtime.engines.asr.pocketsphinx.PocketsphinxASR",
        "funasr": "realtime.engines.asr.funasr.FunASRStreamingASR",
        "openai_transcribe": "realtime.engines.asr.openai_transcribe.OpenAITranscriptionASR",
        "dashscope": "realtime.engines.asr.dashscope.DashScopeRealtimeASR",
    },
    "llm": {
        "echo": "realtime.engines.llm.echo.EchoLLM",
        "openai": "realtime.engines.llm.openai_compat.OpenAICompatibleLLM",
        "dify": "realtime.engines.llm.dify.DifyLLM",
    },
    "lipsync": {
        "default": "realtime.engines.lipsync.default.DefaultLipSync",
        "mouth_warp": "realtime.engines.lipsync.mouth_warp.MouthWarpLipSync",
        "wav2lip": "realtime.engines.lipsync.wav2lip.Wav2LipLipSync",
        "atlas": "realtime.engines.lipsync.atlas.AtlasLipSync",
        "photo": "realtime.engines.lipsync.photo_mouth.PhotoMouthLipSync",
    },
}

LABELS: dict[str, str] = {
    "piper": "Piper (offline)",
    "espeak": "espeak-ng (offline, 中文/English)",
    "edge": "edge-tts (online)",
    "gpt_sovits": "GPT-SoVITS (HTTP server)",
    "pocketsphinx": "pocketsphinx (offline English)",
    "funasr": "FunASR streaming paraformer (offline 中文)",
    "openai_transcribe": "OpenAI-compatible transcription (Whisper, SenseVoice server)",
    "dashscope": "DashScope Paraformer real-time (cloud 中文)",
    "echo": "echo (speak the text as given)",
    "openai": "OpenAI-compatible (Qwen/DashScope, Ollama, vLLM, OpenAI)",
    "dify": "Dify",
    "default": "Default: the person's own mouths (video) or moved lips (photo)",
    "mouth_warp": "Mouth warp (the earlier default)",
    "wav2lip": "Wav2Lip (checkpoint)",
    "atlas": "Mouth atlas (the person's own mouths, from a video avatar)",
    "photo": "Photo mouth (lips moved on a portrait, drawn inside)",
}


class UnknownEngine(LookupError):
    """A stored engine name that no plug-in provides."""


def engine_choices(kind: str) -> list[tuple[str, str]]:
    return [(name, LABELS.get(name, name)) for name in ENGINES[kind]]


def engine_class(kind: str, name: str) -> type[Any]:
    """Import and return the class registered as ``name`` for ``kind`` (tts, asr, llm, lipsync)."""
    try:
        dotted = ENGINES[kind][name]
    except KeyError:
        known = ", ".join(ENGINES.get(kind, {}))
        raise UnknownEngine(f"No {kind} engine named {name!r}; known: {known}") from None
    module_name, class_name = dotted.rsplit(".", 1)
    return getattr(import_module(module_name), class_name)
