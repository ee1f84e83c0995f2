"""Preloading (setting PRELOAD_ROLES): every active role's voice, lip-sync model and avatar loaded into this
process's pool before anyone asks for them, so the first session of a role starts, and a switch to it happens,
without waiting on a load (DESIGN.md §5).

With PRELOAD_ROLES it starts with the worker's first session; with PRELOAD_AT_START it runs in ``asgi.py``,
before daphne listens, and warms each engine up with one inference. Never in ``AppConfig.ready``: that also runs
in ``migrate``, Celery and test processes, which must never load models.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from avatars_app.models import Avatar, Role
from livehuman_site.conf import livehuman_settings
from realtime.avatar.format import UnsupportedBundle
from realtime.engines.base import EngineUnavailable
from realtime.engines.registry import UnknownEngine
from realtime.pool import ModelPool

from .session_factory import get_pool, voice_settings

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


async def preload_active_roles(pool: ModelPool, *, warm_up: bool = False) -> int:
    """Load every active role into ``pool`` (and with ``warm_up`` run each engine once); returns how many roles
    are ready. A role that cannot load is logged and skipped: its sessions will report the reason when they
    start."""
    ready = 0
    for models in await database_sync_to_async(active_role_models)():
        try:
            keys = await pool.warm(**models)
            if warm_up:
                took = await pool.warm_up(keys)
                logger.info("warmed up %s: %s", models["voice"].voice_id or models["tts_engine"], took)
        except (EngineUnavailable, UnknownEngine, UnsupportedBundle) as exc:
            logger.warning("preloading skipped a role: %s", exc)
        else:
            ready += 1
    logger.info("preloaded %d active roles", ready)
    return ready


def preload_at_start() -> int:
    """Before the process serves anyone (from ``asgi.py``, which daphne imports before it listens), when
    PRELOAD_AT_START is set: every active role loaded and warmed up, so the first session is as fast as the
    tenth. Returns how many roles are ready."""
    if not livehuman_settings.PRELOAD_AT_START:
        return 0
    pool = get_pool()
    _started.add(pool)  # nothing left for the first session to start
    started = time.perf_counter()
    ready = asyncio.run(preload_active_roles(pool, warm_up=True))
    seconds = time.perf_counter() - started
    logger.info("preloaded and warmed %d roles in %.1f s before accepting sessions", ready, seconds)
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
