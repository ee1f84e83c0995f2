"""Preloading (setting PRELOAD_ROLES): every active role's voice, lip-sync model and avatar loaded into this
process's pool before anyone asks for them, so the first session of a role starts, and a switch to it happens,
without waiting on a load (DESIGN.md §5).

It starts with the worker's first session rather than at import or in ``AppConfig.ready``: ``ready`` also runs
in ``migrate``, Celery and test processes, which must never load models, and the query needs the database.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from avatars_app.models import Avatar, Role
from realtime.avatar.format import UnsupportedBundle
from realtime.engines.base import EngineUnavailable
from realtime.engines.registry import UnknownEngine
from realtime.pool import ModelPool

from .session_factory import voice_settings

logger = logging.getLogger(__name__)

_started: weakref.WeakSet[ModelPool] = weakref.WeakSet()  # the pools whose preloading has started
_tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones to running tasks


def active_role_models() -> list[dict[str, Any]]:
    """What ``ModelPool.warm`` needs for every active role of every tenant whose avatar is ready."""
    roles = (
        Role.objects.filter(active=True, avatar__status=Avatar.Status.READY)
        .exclude(avatar__bundle_path="")
        .select_related("voice", "avatar")
    )
    return [
        {
            "tts_engine": role.voice.engine,
            "voice": voice_settings(role.voice),
            "lipsync_engine": role.avatar.lipsync_engine,
            "avatar_path": Path(settings.MEDIA_ROOT) / role.avatar.bundle_path,
        }
        for role in roles
    ]


async def preload_active_roles(pool: ModelPool) -> int:
    """Load every active role into ``pool``; returns how many roles are ready. A role that cannot load is
    logged and skipped: its sessions will report the reason when they start."""
    ready = 0
    for models in await database_sync_to_async(active_role_models)():
        try:
            await pool.warm(**models)
        except (EngineUnavailable, UnknownEngine, UnsupportedBundle) as exc:
            logger.warning("preloading skipped a role: %s", exc)
        else:
            ready += 1
    logger.info("preloaded %d active roles", ready)
    return ready


def preload_once(pool: ModelPool) -> asyncio.Task | None:
    """Start preloading ``pool`` in the background the first time this is called for it; None afterwards."""
    if pool in _started:
        return None
    _started.add(pool)
    task = asyncio.get_running_loop().create_task(preload_active_roles(pool), name="pool.preload")
    _tasks.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("preloading failed", exc_info=task.exception())
