"""One media clock per session: the time base both tracks and the player stamp and pace from (DESIGN.md §4).

Time is seconds since the clock started, read from its time source: the event
loop by default, so ``asyncio.sleep`` and ``loop.call_at`` wake on the same time
line; tests run it on a fast-forwarded loop (looptime) or a source of their own. Audio
packet ``n`` is due at ``n · 20 ms`` and video frame ``k`` at ``k / fps``;
because both are derived from this one origin, the audio of a frame and the
frame carry timestamps that denote the same instant.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Protocol


class TimeSource(Protocol):
    """What the clock reads and schedules on: an asyncio event loop has both."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Any: ...


class SessionClock:
    """Seconds since the session's media started, with the tick arithmetic both tracks share."""

    def __init__(self, source: TimeSource | None = None) -> None:
        self._source = source or asyncio.get_running_loop()
        self._origin = self._source.time()

    def now(self) -> float:
        return self._source.time() - self._origin

    def tick(self, rate: float) -> int:
        """The index of the ``rate``-per-second slot that is current now (frame or packet being shown)."""
        return math.floor(self.now() * rate)

    def next_tick(self, rate: float) -> int:
        """The first slot that starts now or later: the earliest one a new item can still be shown in."""
        return math.ceil(self.now() * rate - 1e-9)

    async def sleep_until(self, at: float) -> None:
        if at <= self.now():
            return
        woken = asyncio.get_running_loop().create_future()
        handle = self.call_at(at, lambda: woken.done() or woken.set_result(None))
        try:
            await woken
        finally:
            handle.cancel()

    def call_at(self, at: float, callback: Callable[[], object]) -> Any:
        """Run ``callback`` at clock time ``at`` (at once if that is past); returns a handle with ``cancel()``."""
        return self._source.call_at(self._origin + at, callback)
