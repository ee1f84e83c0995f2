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
    "PLAYOUT_LEAD_FRAMES": 1,  # a new utterance goes on air this many frames after it is ready (tracks pick it up)
    "PLAYOUT_MAX_AHEAD_FRAMES": 4,  # the player schedules at most this far ahead: the cost of an interrupt
    "SAY_MAX_CHARS": 5000,  # longest text one `say` may queue
    # REST `state` and commands (say, interrupt, end) wait this long for the owning worker: then `state` falls back
    # to the stored state and a command answers 409 not_live
    "SESSION_REPLY_TIMEOUT_S": 1.0,
    "ROLE_SWITCH_TIMEOUT_S": 10.0,  # REST `role` waits this long for the owning worker (a role not loaded yet loads)
    # Operations: /metrics answers only a scraper sending "Authorization: Bearer <METRICS_TOKEN>"; empty: no /metrics
    "METRICS_TOKEN": "",
    # A Celery worker serves its metrics (avatar builds) on this port of WORKER_METRICS_ADDR; 0: not at all.
    # With a prefork pool, also set PROMETHEUS_MULTIPROC_DIR (an empty folder) so the children's counts add up.
    "WORKER_METRICS_PORT": 0,
    "WORKER_METRICS_ADDR": "127.0.0.1",
    # Sessions and limits (DESIGN.md §1, §5)
    "MAX_SESSIONS_PER_WORKER": 8,
    "SESSION_IDLE_TIMEOUT_S": 600,
    "SESSION_CLAIM_TIMEOUT_S": 60,  # a created session no WebSocket claims within this ends as "abandoned"
    # Each process stamps the sessions it runs this often, and sweeps the dead ones (sessions_app/heartbeat.py)
    "SESSION_HEARTBEAT_S": 10.0,
    # a connected session whose owner has not stamped it for this long ends as "lost" (its process died); keep it
    # several times SESSION_HEARTBEAT_S, or a busy process loses live sessions
    "SESSION_LOST_AFTER_S": 60.0,
    # WebRTC paths (README "WebRTC"): none by default, so nothing waits on an unreachable STUN server.
    "ICE_SERVERS": [],  # as given to both peers: [{"urls": ["stun:…"]}, {"urls": ["turn:…"], "username", "credential"}]
    "TURN_URLS": [],  # TURN URLs that get per-call credentials from TURN_SECRET, e.g. ["turn:turn.example.com:3478"]
    "TURN_SECRET": "",  # the TURN server's shared secret (coturn: use-auth-secret, static-auth-secret)
    "TURN_TTL_S": 86400,  # how long such credentials stay valid
    "ICE_TRANSPORT_POLICY": "all",  # "relay": both peers use only TURN relays
    # Avatar building (DESIGN.md §6)
    "AVATAR_MAX_SIDE": 1280,  # frames larger than this are downscaled before detection
    "AVATAR_MAX_SECONDS": 120,
    "AVATAR_MIN_FACE_RATIO": 0.6,  # share of frames in which a face must be found
    "AVATAR_BUILD_TIME_LIMIT_S": 1800,  # soft limit: the build stops and the avatar is marked failed
    "AVATAR_BUILD_MAX_RETRIES": 2,  # retries after a storage or database error (never for a bad video)
    "AVATAR_MIN_SOURCE_SIDE": 128,  # smaller (or larger, below) uploads are refused as an extreme resolution
    "AVATAR_MAX_SOURCE_SIDE": 4096,
    "AVATAR_MAX_ASPECT": 4.0,  # long side / short side
    "AVATAR_DETECT_EVERY": 5,  # count the faces in the whole of every k-th frame (to warn about other faces)
    "AVATAR_MAX_GAP_S": 0.5,  # shorter runs without a face are interpolated; longer ones end a steady stretch
    "AVATAR_MIN_SECONDS": 1.0,  # the kept stretch showing one face steadily must last at least this long
    "AVATAR_FRAME_CACHE_MB": 128,  # decoded frames kept per avatar per worker process, shared by its sessions
    "AVATAR_PROGRESS_INTERVAL_S": 0.5,  # how often a running build writes its progress to the database
    "AVATAR_BUILD_QUEUE": "celery",  # Celery's default queue; name another to run builds on dedicated workers (-Q)
    # Piper voices the operator installed (<name>.onnx + <name>.onnx.json); a Voice names one, never a path
    "PIPER_VOICES_DIR": "",
    # A Voice's reference audio (GPT-SoVITS clones it): it must decode as audio within these limits
    "VOICE_REFERENCE_MAX_MB": 20,
    "VOICE_REFERENCE_MAX_SECONDS": 60,
    # Lip-sync batching (DESIGN.md §5)
    "LIPSYNC_BATCH_SIZE": 8,  # frames of all sessions in one forward pass, at most
    "LIPSYNC_BATCH_WAIT_MS": 8,  # how long a partial batch may wait for a session about to send (never when alone)
    "PRELOAD_AT_START": False,  # load and warm up every active role before the daphne process accepts sessions
    "PRELOAD_ROLES": False,  # load every active role's models and avatar when the worker's first session connects
    # Degradation under load (DESIGN.md §4): a session that falls behind its clock steps down a level at a time
    "FPS_LADDER": [50, 30, 25, 20],  # rungs below the role's own fps; all must divide 48 000
    "DEGRADE_ENABLED": True,
    "DEGRADE_LATE_FRAMES": 3,  # late frames within DEGRADE_WINDOW_S that make a session step down
    "DEGRADE_WINDOW_S": 2.0,
    "DEGRADE_HOLD_S": 2.0,  # after a change, wait this long before judging again
    "DEGRADE_RECOVER_S": 5.0,  # on time this long, with headroom, before stepping back up (doubles if it was early)
    "DEGRADE_HEADROOM": 0.7,  # step up only if the lip-sync load at the higher fps stays under this share of real time
    # Below the lowest fps: a level sending half-size frames (the page scales them up), then, for a role whose
    # lip-sync engine is a key here, a level rendering with the lighter engine it names
    "DEGRADE_HALF_SIZE": True,
    "DEGRADE_LIGHTER_ENGINES": {"wav2lip": "default"},
    "WAV2LIP_CHECKPOINT": "",
    # Speech synthesis servers (GPT-SoVITS): longest wait for the answer's next bytes before the sentence fails
    "TTS_TIMEOUT_S": 20.0,
    # Conversation (DESIGN.md §3)
    "VAD_SILENCE_MS": 300,
    # The shorter silence that ends a turn once the recogniser's partial transcript reads as a finished sentence.
    "VAD_SENTENCE_SILENCE_MS": 150,
    "VAD_MIN_SPEECH_MS": 250,
    # Barge-in: which speech cuts the avatar while it talks. "always": any (the page asks the browser for echo
    # cancellation); "push_to_talk": only speech sent with the talk button held, hands-free speech is ignored then.
    "BARGE_IN": "always",
    "LLM_TIMEOUT_S": 30,
    "LLM_IDLE_TIMEOUT_S": 15.0,  # an answer that sends no text for this long mid-stream ends in the apology
    "LLM_ANSWER_DEADLINE_S": 120.0,  # and so does one still streaming this long after its first words
    # Cloud speech recognition (OpenAI-compatible transcription, DashScope real-time): longest wait to connect
    # and for each answer a turn needs; past it the turn fails, the avatar apologises and the session goes on.
    "ASR_TIMEOUT_S": 10.0,
    # Outbound requests (realtime/net/outbound.py): internal addresses a tenant's URLs may reach, which are
    # otherwise refused; e.g. ["127.0.0.1:11434"] for a local Ollama, ["10.0.0.0/8"], ["tts.internal:9880"].
    # Environment: LIVEHUMAN_OUTBOUND_ALLOW, comma-separated.
    "OUTBOUND_ALLOW": [],
    "LLM_HISTORY_CHARS": 6000,
    "FUNASR_MODEL_DIR": "",  # folder with the streaming paraformer (manage.py download_funasr_models)
    "FUNASR_PUNC_MODEL_DIR": "",  # optional punctuation model folder; empty: transcripts without punctuation
    # Tenancy defaults for new tenants
    "TENANT_DEFAULT_MAX_SESSIONS": 5,
    "TENANT_DEFAULT_MAX_AVATARS": 20,
    "TENANT_DEFAULT_MAX_UPLOAD_MB": 200,
    "TENANT_DEFAULT_MAX_STORAGE_MB": 5000,  # everything a tenant stores: uploads and built avatar bundles
    # The ticket in a new session's ws_url opens its WebSocket once, within this many seconds (SECURITY.md)
    "WS_TICKET_TTL_S": 60,
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

        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(default, dict):
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
