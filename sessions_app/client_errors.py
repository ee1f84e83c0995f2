"""What a client is told when an engine or a session fails: a code and a fixed sentence in its language.

Engine errors carry text nobody should show a tenant: an LLM's or a TTS
server's response body, a subprocess's stderr (espeak-ng echoes the lines of a
file given as its voice), an exception naming server paths. That text goes to
the server log with the session id; the client gets only ``public_message``.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("livehuman.engine_errors")

_MESSAGES = {
    "engine_unavailable": _("This role's speech or video engine is not available right now."),
    "role_unavailable": _("This role cannot be played right now."),
    "asr_unavailable": _("Speech recognition is not available right now."),
    "asr_failed": _("Speech recognition failed for this utterance."),
    "tts_failed": _("The voice could not speak this sentence."),
    "llm_unreachable": _("The language model's server cannot be reached."),
    "llm_unauthorized": _("The language model's server refused the role's API key."),
    "llm_timeout": _("The language model did not answer in time."),
    "llm_server_error": _("The language model's server reported an error."),
    "llm_rejected": _("The language model's server rejected the request (model name, base URL or rate limit)."),
    "llm_broken_stream": _("The language model's answer was cut off."),
    "llm_refused": _("The language model's address is not allowed by this platform's outbound policy."),
    "llm_error": _("The language model failed."),
    "internal_error": _("Something went wrong on the server; the error has been logged."),
}
_FALLBACK = _("Something went wrong on the server; the error has been logged.")


def public_message(code: str, language: str | None = None) -> str:
    """The fixed sentence for ``code`` in ``language`` (default: the active one)."""
    with translation.override(language or translation.get_language()):
        return str(_MESSAGES.get(code, _FALLBACK))


def report(session_id: str, code: str, detail: str, language: str | None = None) -> str:
    """Log ``detail`` (engine text) with the session id; return what the client may see instead."""
    logger.warning("session %s: %s: %s", session_id, code, detail)
    return public_message(code, language)


def language_from_scope(scope: dict[str, Any]) -> str:
    """The WebSocket client's language, as the pages choose it: the language cookie, then Accept-Language."""
    headers = dict(scope.get("headers", []))
    cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    chosen = cookies.get(settings.LANGUAGE_COOKIE_NAME)
    candidates = [chosen.value] if chosen else []
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [tag for tag, _ in translation.trans_real.parse_accept_lang_header(accept) if tag != "*"]
    for candidate in candidates:
        try:
            return translation.get_supported_language_variant(candidate)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE
