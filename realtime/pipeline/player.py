"""Player: the last stage. Schedules each AV segment on the timeline a few frames ahead of the session clock.

Back-pressure lives here: the player takes the next segment only when its slot
is at most ``max_ahead_frames`` away, so everything upstream waits on bounded
queues instead of piling frames up, and an interrupt has little to throw away.
A segment that arrives late (the renderer fell behind) goes to the earliest
slot still ``lead_frames`` away, leaving idle frames in the gap rather than
delaying everything after it; a gap inside a sentence is reported to
``on_late`` (the degradation governor), since there the audio is continuous
and only a slow generator can open one.

Positions are 48 kHz samples (see ``realtime.timeline``): each segment lasts
as long as its audio, so segments made at different fps follow each other
without a gap, and a fresh utterance starts on the grid of the current fps.

Events that belong to a moment on air (a sentence's subtitle, the end of a
message) are cued on the clock for the tick they play at, not sent when the
segment is merely scheduled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from realtime.audio import OUTPUT_RATE
from realtime.clock import SessionClock
from realtime.frames import AVSegment, MessageEnd, PipelineItem
from realtime.timeline import FrameRate, PlayoutTimeline

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
        rate: FrameRate,
        lead_frames: int,
        max_ahead_frames: int,
        maxsize: int,
        on_late: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(generation, maxsize)
        self.clock = clock
        self.timeline = timeline
        self.rate = rate
        self.listener = listener
        self.lead_frames = lead_frames
        self.max_ahead_frames = max(lead_frames, max_ahead_frames)
        self.on_late = on_late
        self._next: int | None = None  # where the segment after the last one scheduled would start
        self._cues: list[asyncio.TimerHandle] = []

    def first_start(self) -> int:
        """The position (48 kHz samples) a segment handed to the player now would be shown at."""
        step = self.rate.frame_samples
        earliest = (self.clock.next_tick(self.rate.fps) + self.lead_frames) * step
        return earliest if self._next is None else max(self._next, earliest)

    async def process(self, item: PipelineItem) -> None:
        if isinstance(item, AVSegment):
            duration = len(item.audio)
            await self.clock.sleep_until((self.first_start() - self.max_ahead_frames * duration) / OUTPUT_RATE)
            if not self.is_current(item):
                return  # cut while it waited (``SpeechPipeline.silence`` runs before this task is stopped)
            at = self.first_start()
            if item.subtitle is None and self._next is not None and at > self._next and self.on_late is not None:
                self.on_late(-(-(at - self._next) // duration), OUTPUT_RATE // duration)
            self.timeline.drop_past(self.clock.tick(OUTPUT_RATE))
            self.timeline.put(at, item.video, item.audio)
            self._next = at + duration
            if item.subtitle is not None:
                message_id, text = item.message_id, item.subtitle
                self._cue(at, lambda: self.listener.sentence_on_air(message_id, text))
        elif isinstance(item, MessageEnd):
            message_id = item.message_id
            end = max(self._next or 0, self.clock.next_tick(self.rate.fps) * self.rate.frame_samples)
            self._cue(end, lambda: self.listener.message_played(message_id))

    def clear(self) -> None:
        for cue in self._cues:
            cue.cancel()
        self._cues.clear()
        self.timeline.clear()
        self._next = None

    def _cue(self, at: int, callback: Callable[[], object]) -> None:
        now = asyncio.get_running_loop().time()
        self._cues = [cue for cue in self._cues if cue.when() > now]
        self._cues.append(self.clock.call_at(at / OUTPUT_RATE, callback))
