"""A Voice's engine settings checked by the engine itself when the Voice is saved (issue 10, High 2).

Each TTS engine says what it accepts (``TTSEngine.check_settings``): espeak-ng a
voice it lists, Piper a voice the operator installed, GPT-SoVITS a server and
this Voice's own reference audio. Here its answer becomes a field error in the
user's language, for the admin and the API alike (both call ``Voice.clean``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings
from realtime.engines.registry import UnknownEngine, engine_class
from realtime.engines.tts.base import VoiceSettingError, VoiceSettings

if TYPE_CHECKING:
    from .models import Voice


def tts_engine_options() -> dict[str, dict[str, Any]]:
    """Process-wide constructor arguments of the TTS engines, by engine name (also handed to the pool)."""
    return {
        "gpt_sovits": {"timeout_s": float(livehuman_settings.TTS_TIMEOUT_S)},
        "piper": {"voices_dir": str(livehuman_settings.PIPER_VOICES_DIR)},
    }


def check_voice_settings(voice: Voice) -> None:
    """Raise ValidationError (by field) if the Voice's engine refuses its settings."""
    try:
        engine = engine_class("tts", voice.engine)
    except UnknownEngine:
        return  # the field's choices report it
    settings = VoiceSettings(
        voice_id=voice.voice_id,
        language=voice.language,
        server_url=voice.server_url,
        reference_audio=voice.reference_audio.name if voice.reference_audio else "",
        reference_text=voice.reference_text,
    )
    try:
        engine.check_settings(settings, **tts_engine_options().get(voice.engine, {}))
    except VoiceSettingError as refused:
        raise ValidationError({refused.field: _message(voice.engine, refused)}, code=refused.code) from None


def _message(engine: str, refused: VoiceSettingError) -> str:
    if refused.code == "required":
        return _("The %(engine)s engine needs this.") % {"engine": engine}
    if refused.code == "unknown_voice" and engine == "espeak":
        return _("espeak-ng has no voice of this name; use a name from `espeak-ng --voices`, e.g. en-us or de.")
    if refused.code == "unknown_voice":
        installed = ", ".join(refused.choices) or _("none")
        return _(
            "Not a voice installed on this server. Installed voices: %(voices)s. Leave it empty for the default."
        ) % {"voices": installed}
    return _("A voice id is a voice name such as zh-CN-XiaoxiaoNeural, not a path or free text.")
