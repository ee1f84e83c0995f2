"""Owner heartbeats and the sweep of dead sessions (issue 10, Medium 6; DESIGN.md §7).

Every process that owns sessions runs one heartbeat task on its event loop. Every SESSION_HEARTBEAT_S it
stamps the rows of the sessions it runs (``ChatSession.heartbeat_at``), ends the dead sessions of every
process — ``connected`` rows nobody stamped for SESSION_LOST_AFTER_S as ``lost`` (their process was killed
or lost its host), ``created`` rows nobody claimed as ``abandoned`` — and closes its own sessions whose rows
were ended elsewhere (an ``End`` the channel layer lost). The database is the only shared piece, so this
works the same on SQLite and PostgreSQL, with or without Redis, and needs no other service.

It starts with a process's first session (``SessionOwner.start``), and under daphne as soon as the server
runs (``daphne_process``), so a restarted process sweeps what its predecessor left at once. It runs on the
event loop, not in a thread: a loop that stops turning stops the heartbeat, and its sessions are as good as
lost.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import Context

from channels.db import database_sync_to_async

from livehuman_site.conf import livehuman_settings

from . import services
from .live_sessions import live_sessions

logger = logging.getLogger(__name__)

_task: asyncio.Task | None = None  # this process's heartbeat


def ensure_running() -> asyncio.Task:
    """Start this process's heartbeat on the running loop unless it runs already; returns its task."""
    global _task
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        # A fresh context: the task outlives the request that starts it (asgiref's per-request executor ends).
        _task = loop.create_task(_beat_forever(), name="sessions.heartbeat", context=Context())
    return _task


async def beat() -> None:
    """One heartbeat: stamp, sweep, and close what was ended elsewhere."""
    ended_elsewhere = await database_sync_to_async(services.heartbeat)(live_sessions.ids())
    for session_id, reason in ended_elsewhere.items():
        owner = live_sessions.owner(session_id)
        if owner is not None:
            await owner.ended(reason)


async def _beat_forever() -> None:
    while True:
        try:
            await beat()
        except Exception:  # a database hiccup must not stop the heartbeat for good
            logger.exception("session heartbeat failed")
        await asyncio.sleep(livehuman_settings.SESSION_HEARTBEAT_S)
