"""The realtime settings dataclasses as the product's documented defaults (``conf.DEFAULTS``) fill them.

Tests and benches build sessions without Django's settings; these helpers give
them the same objects the session factory would build with no LIVEHUMAN
overrides, through the same mapping (``livehuman_site.runtime_settings``), so
no number is copied out of ``conf.DEFAULTS``. Keyword arguments replace fields.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from livehuman_site import runtime_settings
from livehuman_site.conf import DEFAULTS
from realtime.avatar.reader import AvatarBundle
from realtime.config import SessionConfig
from realtime.conversation import ConversationSettings
from realtime.degrade import DegradePolicy
from realtime.engines.asr.base import CloudASRSettings
from realtime.engines.llm.base import LLMSettings
from realtime.net.ice import IceSettings
from realtime.pipeline import PlayoutSettings
from realtime.pool import ModelPool

PRODUCT_DEFAULTS = SimpleNamespace(**DEFAULTS)  # a settings source with no overrides


def playout_settings(**fields: Any) -> PlayoutSettings:
    return replace(runtime_settings.playout_settings(PRODUCT_DEFAULTS), **fields)


def degrade_policy(**fields: Any) -> DegradePolicy:
    return replace(runtime_settings.degrade_policy(PRODUCT_DEFAULTS), **fields)


def ice_settings(**fields: Any) -> IceSettings:
    return replace(runtime_settings.ice_settings(PRODUCT_DEFAULTS), **fields)


def llm_settings(**fields: Any) -> LLMSettings:
    return replace(runtime_settings.llm_settings(PRODUCT_DEFAULTS), **fields)


def conversation_settings(**fields: Any) -> ConversationSettings:
    llm = fields.pop("llm", None) or llm_settings()
    return replace(runtime_settings.conversation_settings(PRODUCT_DEFAULTS, llm=llm), **fields)


def cloud_asr_settings(**fields: Any) -> CloudASRSettings:
    return replace(runtime_settings.cloud_asr_settings(PRODUCT_DEFAULTS), **fields)


def model_pool(**arguments: Any) -> ModelPool:
    """A pool batching and caching as the defaults say; ``arguments`` add to or replace ``ModelPool``'s."""
    return ModelPool(**{**runtime_settings.pool_options(PRODUCT_DEFAULTS), **arguments})


def open_bundle(path: str | Path) -> AvatarBundle:
    """An avatar bundle with the frame cache a worker's pool gives it (the AVATAR_FRAME_CACHE_MB setting)."""
    return AvatarBundle.open(path, cache_bytes=runtime_settings.pool_options(PRODUCT_DEFAULTS)["frame_cache_mb"] << 20)


def session_config(**fields: Any) -> SessionConfig:
    """A session's config with the default playout, degradation and ICE transport settings unless ``fields`` give
    them (and all its own fields)."""
    fields.setdefault("playout", playout_settings())
    fields.setdefault("degrade", degrade_policy())
    fields.setdefault("ice_transport_policy", ice_settings().transport_policy)
    return SessionConfig(**fields)
