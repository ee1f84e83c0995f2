"""Engine names in the admin user's language. ``realtime.engines.registry.LABELS`` stays Django-free (English);
this maps the same names to lazily translated labels for the admin's choice fields."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

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

ENGINE_FIELDS = frozenset({"engine", "asr_engine", "llm_engine", "lipsync_engine"})


class TranslatedEngineChoicesMixin:
    """Admin mixin: the engine fields' choices show the translated label (the registry's English otherwise)."""

    def formfield_for_choice_field(self, db_field: models.Field, request: Any, **kwargs: Any) -> Any:
        if db_field.name in ENGINE_FIELDS:
            kwargs["choices"] = [(name, ENGINE_LABELS.get(name, label)) for name, label in db_field.choices]
        return super().formfield_for_choice_field(db_field, request, **kwargs)  # type: ignore[misc]
