"""The readable part of an HTTP error body from an engine's server, for the server log (never shown to a tenant)."""

from __future__ import annotations

import contextlib
import json


def error_reason(body: bytes) -> str:
    """OpenAI's ``error.message``, Dify's ``message``, a ``detail`` or ``error`` string, or the text itself (cut)."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        payload = json.loads(text)
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])
            for key in ("message", "detail", "error"):
                if payload.get(key):
                    return str(payload[key])
    return text[:200]
