"""Engine names in the reader's language. ``realtime.engines.registry.LABELS`` stays Django-free (English); this
maps the same names to lazily translated labels, the engine fields' choices: the admin's forms, lists and
filters and the API's browsable forms all show them in the reader's language."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from realtime.engines.registry import engine_choices

ENGINE_LABELS: dict[str, Promise] = {
    "piper": _("Piper (offline)"),
    "espeak": _("espeak-ng (offline, 中文/English)"),
    "edge": _("edge-tts (online)"),
    "gpt_sovits": _("GPT-SoVITS (HTTP server)"),
    "pocketsphinx": _("pocketsphinx (offline English)"),
    "funasr": _("FunASR streaming paraformer (offline 中文)"),
    "openai_transcribe": _("OpenAI-compatible transcription (Whisper, SenseVoice server)"),
    "dashscope": _("DashScope Paraformer real-time (cloud 中文)"),
    "echo": _("echo (speak the text as given)"),
    "openai": _("OpenAI-compatible (Qwen/DashScope, Ollama, vLLM, OpenAI)"),
    "dify": _("Dify"),
    "default": _("Default: the person's own mouths (video) or moved lips (photo)"),
    "mouth_warp": _("Mouth warp (the earlier default)"),
    "wav2lip": _("Wav2Lip (checkpoint)"),
    "atlas": _("Mouth atlas (the person's own mouths, from a video avatar)"),
    "photo": _("Photo mouth (lips moved on a portrait, drawn inside)"),
}


def translated_engine_choices(kind: str) -> list[tuple[str, Promise | str]]:
    """The registry's engines of ``kind`` as model field choices, each with its translated label."""
    return [(name, ENGINE_LABELS.get(name, label)) for name, label in engine_choices(kind)]
