"""The product's own settings, with documented defaults, read through one accessor.

``settings.LIVEHUMAN`` (a dict) overrides any default; ``settings.py`` fills it
from ``LIVEHUMAN_<NAME>`` environment variables, which arrive as strings and
are converted here to the type of the default.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Media timing (DESIGN.md §4)
    "DEFAULT_FPS": 25,
    "ALLOWED_FPS": [20, 25, 30, 50],
    # Sessions and limits (DESIGN.md §1, §5)
    "MAX_SESSIONS_PER_WORKER": 8,
    "SESSION_IDLE_TIMEOUT_S": 600,
    "ICE_SERVERS": [],  # e.g. [{"urls": ["stun:stun.example.org:3478"]}]; none by default: no wait on unreachable STUN
    # Avatar building (DESIGN.md §6)
    "AVATAR_MAX_SIDE": 1280,  # frames larger than this are downscaled before detection
    "AVATAR_MAX_SECONDS": 120,
    "AVATAR_MIN_FACE_RATIO": 0.6,  # share of frames in which a face must be found
    "AVATAR_BUILD_TIME_LIMIT_S": 1800,
    # Lip-sync batching (DESIGN.md §5)
    "LIPSYNC_BATCH_SIZE": 8,
    "LIPSYNC_BATCH_WAIT_MS": 8,
    "WAV2LIP_CHECKPOINT": "",
    # Conversation (DESIGN.md §3)
    "VAD_SILENCE_MS": 300,
    "VAD_MIN_SPEECH_MS": 250,
    "LLM_TIMEOUT_S": 30,
    "LLM_HISTORY_CHARS": 6000,
    "FUNASR_MODEL_DIR": "",
    # Tenancy defaults for new tenants
    "TENANT_DEFAULT_MAX_SESSIONS": 5,
    "TENANT_DEFAULT_MAX_AVATARS": 20,
    "TENANT_DEFAULT_MAX_UPLOAD_MB": 200,
}


def _coerce(default: Any, value: Any) -> Any:
    """Turn an environment string into the default's type; leave real values alone."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, list):
        import json

        return json.loads(value)
    return value


class LiveHumanSettings:
    """Attribute access to LIVEHUMAN settings: ``livehuman_settings.DEFAULT_FPS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown LiveHuman setting {name!r}")
        if name not in self._cache:
            overrides = getattr(settings, "LIVEHUMAN", {})
            self._cache[name] = _coerce(DEFAULTS[name], overrides.get(name, DEFAULTS[name]))
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


livehuman_settings = LiveHumanSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "LIVEHUMAN":
        livehuman_settings.reload()


setting_changed.connect(_reload)
