"""The live sessions of this process: the per-worker cap, their owners (to end them all at shutdown, or one
whose row was ended elsewhere), and their states and degradation levels for the metrics.

A place is reserved before anything expensive happens (engines, peer
connection), in one synchronous step, so two connections racing for the last
place cannot both get it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .owner import SessionOwner

logger = logging.getLogger(__name__)


class WorkerFull(Exception):
    """This process already runs as many sessions as it may."""

    code = "session_limit"


class AlreadyLive(Exception):
    """The session is already connected here (another tab or a reconnect that raced the old socket)."""

    code = "session_busy"


class LiveSessionRegistry:
    def __init__(self) -> None:
        self._owners: dict[str, SessionOwner] = {}

    def reserve(self, owner: SessionOwner, limit: int) -> None:
        """Take a place for ``owner``'s session; raises ``AlreadyLive`` or ``WorkerFull``."""
        if owner.session_id in self._owners:
            raise AlreadyLive(owner.session_id)
        if len(self._owners) >= limit:
            raise WorkerFull(limit)
        self._owners[owner.session_id] = owner

    def release(self, session_id: str) -> None:
        self._owners.pop(session_id, None)

    def ids(self) -> list[str]:
        return list(self._owners)

    def owner(self, session_id: str) -> SessionOwner | None:
        return self._owners.get(session_id)

    async def end_all(self, reason: str, close_code: int) -> None:
        """End every session here (the process is stopping), each as far as it can get: one failing to close
        does not keep the others open."""
        owners = list(self._owners.values())
        results = await asyncio.gather(*(owner.ended(reason, close_code) for owner in owners), return_exceptions=True)
        for owner, result in zip(owners, results, strict=True):
            if isinstance(result, Exception):
                logger.error("session %s did not end cleanly", owner.session_id, exc_info=result)

    def states(self) -> list[tuple[str, str]]:
        """(speaking state, tenant) of each session here; "connecting" while a reserved place has no media yet."""
        return [
            (owner.live.state.value, owner.live.config.tenant) if owner.live is not None else ("connecting", "")
            for owner in list(self._owners.values())
        ]

    def degrade_levels(self) -> list[tuple[str, str]]:
        """(level, step) of each session here with media (see ``LiveSession.degrade_state``)."""
        return [
            (str(owner.live.governor.index), owner.live.governor.level.step.value)
            for owner in list(self._owners.values())
            if owner.live is not None
        ]

    def __len__(self) -> int:
        return len(self._owners)


live_sessions = LiveSessionRegistry()
