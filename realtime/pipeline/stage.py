"""A pipeline stage: a bounded inbox, one job, and a reset that forgets everything queued.

Stages never start tasks themselves: the pipeline's ``TaskOwner`` runs each
stage's ``run`` loop and, on an interrupt, cancels it, calls ``reset`` and
starts it again. Items carry their generation; a stage drops stale ones on the
way in and on the way out, so an item that raced past the reset still never
reaches the air.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar

from realtime.frames import PipelineItem


class Generation:
    """Which answer is current. ``bump`` makes everything made for earlier answers stale."""

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> int:
        self.value += 1
        return self.value


class Stage(ABC):
    """Receives items in ``inbox``, processes them one at a time, pushes results to ``downstream``."""

    name: ClassVar[str]

    def __init__(self, generation: Generation, maxsize: int) -> None:
        self.generation = generation
        self.inbox: asyncio.Queue[PipelineItem] = asyncio.Queue(maxsize)
        self.downstream: Stage | None = None

    async def run(self) -> None:
        while True:
            item = await self.inbox.get()
            if self.is_current(item):
                await self.process(item)

    def is_current(self, item: PipelineItem) -> bool:
        return item.generation == self.generation.value

    async def emit(self, item: PipelineItem) -> None:
        """Pass ``item`` on; waits while the next stage's inbox is full (back-pressure)."""
        if self.downstream is not None and self.is_current(item):
            await self.downstream.inbox.put(item)

    def reset(self) -> None:
        """Drop everything queued and any partial work. Called while the stage's task is stopped."""
        while not self.inbox.empty():
            self.inbox.get_nowait()
        self.clear()

    def clear(self) -> None:
        """Forget per-message state (partial sentences, batches); stages with such state override this."""

    @abstractmethod
    async def process(self, item: PipelineItem) -> None:
        """Handle one current item."""
