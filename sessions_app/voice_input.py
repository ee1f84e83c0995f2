"""Whether a role's voice input can work on this server, said on the chat page before a session starts.

A role may name a recogniser whose models the operator has not installed yet
(the Chinese demo role uses FunASR, whose models are a separate download).
The page says so next to the role instead of letting a user talk into a
microphone nobody listens to; typing works either way.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.conf import livehuman_settings
from realtime.engines.asr.funasr import check_available
from realtime.engines.base import EngineUnavailable


def voice_input_note(role: Role) -> str:
    """A sentence for the page when the role's speech recognition cannot run here; "" when it can."""
    if role.asr_engine != "funasr":
        return ""
    try:
        check_available(livehuman_settings.FUNASR_MODEL_DIR, livehuman_settings.FUNASR_PUNC_MODEL_DIR)
    except EngineUnavailable:
        return _(
            "Voice input for this role needs the FunASR speech models, which are not installed yet (an operator"
            " runs “python manage.py download_funasr_models”). Typing works."
        )
    return ""
