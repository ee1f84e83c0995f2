"""Render stage: lip-sync jobs in, finished video frames paired with their audio out, a batch at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from realtime.engines.lipsync.base import LipSyncRequest
from realtime.frames import AVSegment, FrameJob, MessageEnd, PipelineItem

from .stage import Generation, Stage

Renderer = Callable[[Sequence[LipSyncRequest]], Awaitable[list[np.ndarray]]]


class RenderStage(Stage):
    """Gathers the jobs already waiting (up to ``batch_size``) into one ``render`` call.

    ``render`` is the session's way to the model: in a live session the pool's
    batching executor, which joins these jobs with other sessions' into one
    forward pass off the event loop. No waiting here for a batch to fill: a
    frame that is ready is sent now. How long each call took is reported to
    ``on_rendered(seconds, frames)`` (the degradation governor's load signal).
    ``render`` can be replaced while the stage is stopped (a role switch).
    """

    name = "render"

    def __init__(
        self,
        generation: Generation,
        render: Renderer,
        *,
        batch_size: int,
        maxsize: int,
        on_rendered: Callable[[float, int], None] | None = None,
    ) -> None:
        super().__init__(generation, maxsize)
        self.render = render
        self.batch_size = max(1, batch_size)
        self.on_rendered = on_rendered

    async def process(self, item: PipelineItem) -> None:
        if isinstance(item, MessageEnd):
            await self.emit(item)
            return
        assert isinstance(item, FrameJob)
        batch, after = self._gather(item)
        started = time.perf_counter()
        frames = await self.render([job.request for job in batch])
        if self.on_rendered is not None:
            self.on_rendered(time.perf_counter() - started, len(batch))
        for job, frame in zip(batch, frames, strict=True):
            await self.emit(AVSegment(job.generation, job.message_id, frame, job.audio, job.subtitle))
        if after is not None:
            await self.emit(after)

    def _gather(self, first: FrameJob) -> tuple[list[FrameJob], MessageEnd | None]:
        """``first`` plus the jobs queued behind it, stopping at a message's end (returned to emit after)."""
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                item = self.inbox.get_nowait()
            except asyncio.QueueEmpty:
                break
            if not self.is_current(item):
                continue
            if isinstance(item, MessageEnd):
                return batch, item
            assert isinstance(item, FrameJob)
            batch.append(item)
        return batch, None
