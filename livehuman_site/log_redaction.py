"""Every log line with its secrets hidden (issue 10, Low 12).

``redact_secrets`` is a structlog processor in the one log formatter of ``settings.LOGGING``, which renders
every standard-library log line (daphne's, Django's, Celery's workers', ours). It runs after the exception is
formatted, so the message with its arguments, a traceback and the bound context (session id, tenant) are all
covered: URLs with credentials, secret query values, RTMP stream keys and ``Api-Key`` credentials
(``realtime.net.redact``).
"""

from __future__ import annotations

from typing import Any

from realtime.net.redact import redact_text


def redact_secrets(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: _redacted(value) for key, value in event_dict.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redacted(item) for item in value)
    return value
