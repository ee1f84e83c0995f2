"""Player: the last stage. Schedules each AV segment on the timeline a few frames ahead of the session clock.

Back-pressure lives here: the player takes the next segment only when its slot
is at most ``max_ahead_frames`` away, so everything upstream waits on bounded
queues instead of piling frames up, and an interrupt has little to throw away.
A segment that arrives late (the renderer fell behind) goes to the earliest
slot still ``lead_frames`` away, leaving idle frames in the gap rather than
delaying everything after it.

Events that belong to a moment on air (a sentence's subtitle, the end of a
message) are cued on the clock for the tick they play at, not sent when the
segment is merely scheduled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from realtime.clock import SessionClock
from realtime.frames import AVSegment, MessageEnd, PipelineItem
from realtime.timeline import PlayoutTimeline

from .stage import Generation, Stage


class PlayoutListener(Protocol):
    def sentence_on_air(self, message_id: int, text: str) -> None:
        """The first frame of a sentence is being shown now."""

    def message_played(self, message_id: int) -> None:
        """The last frame of a message has been shown."""


class Player(Stage):
    """Puts each segment on the timeline at its tick and cues its events for the moment it is shown."""

    name = "player"

    def __init__(
        self,
        generation: Generation,
        clock: SessionClock,
        timeline: PlayoutTimeline,
        listener: PlayoutListener,
        *,
        lead_frames: int,
        max_ahead_frames: int,
        maxsize: int,
    ) -> None:
        super().__init__(generation, maxsize)
        self.clock = clock
        self.timeline = timeline
        self.fps = timeline.fps
        self.listener = listener
        self.lead_frames = lead_frames
        self.max_ahead_frames = max(lead_frames, max_ahead_frames)
        self._next_tick: int | None = None
        self._cues: list[asyncio.TimerHandle] = []

    def first_tick(self) -> int:
        """The tick a segment handed to the player now would be shown at."""
        earliest = self.clock.next_tick(self.fps) + self.lead_frames
        return earliest if self._next_tick is None else max(self._next_tick, earliest)

    async def process(self, item: PipelineItem) -> None:
        if isinstance(item, AVSegment):
            await self.clock.sleep_until((self.first_tick() - self.max_ahead_frames) / self.fps)
            tick = self.first_tick()
            self.timeline.drop_past(self.clock.tick(self.fps))
            self.timeline.put(tick, item.video, item.audio)
            self._next_tick = tick + 1
            if item.subtitle is not None:
                message_id, text = item.message_id, item.subtitle
                self._cue(tick, lambda: self.listener.sentence_on_air(message_id, text))
        elif isinstance(item, MessageEnd):
            message_id = item.message_id
            end = max(self._next_tick or 0, self.clock.next_tick(self.fps))
            self._cue(end, lambda: self.listener.message_played(message_id))

    def clear(self) -> None:
        for cue in self._cues:
            cue.cancel()
        self._cues.clear()
        self.timeline.clear()
        self._next_tick = None

    def _cue(self, tick: int, callback: Callable[[], object]) -> None:
        now = asyncio.get_running_loop().time()
        self._cues = [cue for cue in self._cues if cue.when() > now]
        self._cues.append(self.clock.call_at(tick / self.fps, callback))
