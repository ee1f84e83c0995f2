"""One media clock per session: the time base both tracks and the player stamp and pace from (DESIGN.md §4).

Time is seconds since the clock started, on the event loop's monotonic clock,
so ``asyncio.sleep`` and ``loop.call_at`` wake on the same time line. Audio
packet ``n`` is due at ``n · 20 ms`` and video frame ``k`` at ``k / fps``;
because both are derived from this one origin, the audio of a frame and the
frame carry timestamps that denote the same instant.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class SessionClock:
    """Seconds since the session's media started, with the tick arithmetic both tracks share."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._origin = self._loop.time()

    def now(self) -> float:
        return self._loop.time() - self._origin

    def tick(self, rate: float) -> int:
        """The index of the ``rate``-per-second slot that is current now (frame or packet being shown)."""
        return math.floor(self.now() * rate)

    def next_tick(self, rate: float) -> int:
        """The first slot that starts now or later: the earliest one a new item can still be shown in."""
        return math.ceil(self.now() * rate - 1e-9)

    async def sleep_until(self, at: float) -> None:
        delay = at - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, at: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run ``callback`` at clock time ``at`` (at once if that is past)."""
        return self._loop.call_at(self._origin + at, callback)
