"""The live sessions of this process: the per-worker cap, and their states and degradation levels (metrics).

A place is reserved before anything expensive happens (engines, peer
connection), in one synchronous step, so two connections racing for the last
place cannot both get it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtime.session import LiveSession


class WorkerFull(Exception):
    """This process already runs as many sessions as it may."""

    code = "session_limit"


class AlreadyLive(Exception):
    """The session is already connected here (another tab or a reconnect that raced the old socket)."""

    code = "session_busy"


class LiveSessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession | None] = {}

    def reserve(self, session_id: str, limit: int) -> None:
        """Take a place for ``session_id``; raises ``AlreadyLive`` or ``WorkerFull``."""
        if session_id in self._sessions:
            raise AlreadyLive(session_id)
        if len(self._sessions) >= limit:
            raise WorkerFull(limit)
        self._sessions[session_id] = None

    def attach(self, session_id: str, session: LiveSession) -> None:
        self._sessions[session_id] = session

    def release(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def states(self) -> list[tuple[str, str]]:
        """(speaking state, tenant) of each session here; "connecting" while a reserved place has no media yet."""
        return [
            (session.state.value, session.config.tenant) if session is not None else ("connecting", "")
            for session in list(self._sessions.values())
        ]

    def degrade_levels(self) -> list[tuple[str, str]]:
        """(level, step) of each session here with media (see ``LiveSession.degrade_state``)."""
        return [
            (str(session.governor.index), session.governor.level.step.value)
            for session in list(self._sessions.values())
            if session is not None
        ]

    def __len__(self) -> int:
        return len(self._sessions)


live_sessions = LiveSessionRegistry()
